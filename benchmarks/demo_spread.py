"""How far the demo's held-out accuracy moves with float rounding: the demo preset over seeds, thread
counts and CPU instruction sets.

A CPU type changes the order in which float kernels sum; short epochs from scratch amplify that. This
runs the same preset with 1 and 2 torch threads and with the kernels of an older x86 CPU (SSE4.1: PyTorch's
ATEN_CPU_CAPABILITY=default and oneDNN's ONEDNN_MAX_CPU_ISA=SSE41 instead of this CPU's AVX2), each an
other summation order on one machine, and several seeds: the spread a user can meet on another CPU.
Each (threads, kernels) setting has its own workspace (neither keys a run, so one workspace would
return the first run Cached); seeds and methods share it and its crops.

    .venv/bin/python benchmarks/demo_spread.py --seeds 0 1 2 --threads 1 2 --isa native sse41 [--method preset triplets]

Prints one line per run (last and best epoch's 10-fold accuracy, AUC, seconds) and a summary per method.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name

from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
# The preset as it is (27 identities x 4 images per step mined with batch_all), or the seed's method on the
# same 108 images per step: 36 offline triplets, the hard ones of each batch kept.
METHODS: dict[str, dict[str, object]] = {
    "preset": {},
    "triplets": {"sampling": "triplets", "mining": "seed"},
}
ISA = {
    "native": {},
    "sse41": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}

CHILD = """
import json, sys
from flows.train import run_in_process
summary = run_in_process("demo", json.loads(sys.argv[1]))
rows = [e["metrics"] for e in summary["evaluations"]]
print("RESULT " + json.dumps([{k: r[k] for k in ("accuracy", "accuracy_std", "roc_auc")} for r in rows]))
"""


def run_one(workspace: Path, seed: int, threads: int, isa: str, overrides: dict[str, object]) -> dict:
    """The demo preset in a child process with `threads` torch threads and the `isa` kernels; per-epoch
    metrics and seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **ISA[isa]}
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    values = {"workspace": str(workspace), "seed": seed, **overrides}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(values)], env=env, cwd=REPO, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"demo run failed (seed {seed}, {threads} threads, {isa}):\n{done.stderr[-3000:]}")
    return {"epochs": json.loads(lines[-1].removeprefix("RESULT ")), "seconds": seconds}


def setting(text: str) -> tuple[int, str]:
    """A `THREADS:ISA` setting, e.g. 2:native or 1:sse41."""
    threads, _, isa = text.partition(":")
    if not threads.isdigit() or int(threads) < 1 or isa not in ISA:
        raise argparse.ArgumentTypeError(f"expected THREADS:ISA with ISA one of {', '.join(ISA)}, got {text!r}")
    return int(threads), isa


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--settings",
        type=setting,
        nargs="+",
        default=[(2, "native"), (1, "native"), (2, "sse41")],
        help="THREADS:ISA settings to run every seed with (ISA: native or sse41)",
    )
    parser.add_argument("--method", nargs="+", choices=sorted(METHODS), default=["preset"])
    parser.add_argument("--root", type=Path, default=None, help="folder for the workspaces (default: a temp dir)")
    parser.add_argument("--out", default="benchmarks/results/demo_spread.json")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="demo-spread-"))
    rows = []
    for threads, isa in args.settings:
        for name in args.method:
            for seed in args.seeds:
                result = run_one(root / f"threads-{threads}-{isa}", seed, threads, isa, METHODS[name])
                accuracies = [e["accuracy"] for e in result["epochs"]]
                last = result["epochs"][-1]
                rows.append({"method": name, "seed": seed, "threads": threads, "isa": isa, **result})
                print(
                    f"{name:>8} seed {seed} threads {threads} {isa:>6}: last {last['accuracy']:.4f}"
                    f"+-{last['accuracy_std']:.4f} (AUC {last['roc_auc']:.4f}), best {max(accuracies):.4f}, "
                    f"per epoch {' '.join(f'{a:.3f}' for a in accuracies)}, {result['seconds']:.0f} s",
                    flush=True,
                )
    for name in args.method:
        finals = [row["epochs"][-1]["accuracy"] for row in rows if row["method"] == name]
        print(
            f"{name}: last-epoch accuracy over {len(finals)} runs: min {min(finals):.4f}, "
            f"median {statistics.median(finals):.4f}, max {max(finals):.4f}"
        )
    atomic_write_json(args.out, {"cpu": cpu_name(), "runs": rows})


if __name__ == "__main__":
    main()
