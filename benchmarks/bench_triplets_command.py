"""`facenet triplets` at glint360k scale: the whole command's time and peak RSS reading only the
manifest's label column, against reading the whole manifest (the earlier way), and PK batches.

Builds a synthetic 17.09M-row manifest of 360,232 identities (the labels of bench_triplets.py,
glint-like paths `id_<label>/<n>.jpg`) in a temporary folder, then runs, interleaved, each a fresh
process timed from start to exit with its peak RSS (VmHWM):

- full:  `facenet triplets` as before, the manifest read whole (read_manifest: paths, identities, labels);
- labels: `facenet triplets` as it is, only the label column (read_manifest_labels);
- pk:    `facenet triplets --sampling pk --pk_identities 32 --pk_images 4`;
- start-up only: `facenet triplets --help` (interpreter, imports and the parser: the floor of the others).

and times generate_triplets (5000 x 544) and generate_pk_batches (5000 x 32 x 4) in this process.

    .venv/bin/python benchmarks/bench_triplets_command.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_triplets import BATCH, ITERATIONS, PER_BATCH, synthetic_labels  # noqa: E402

from facenet_core.data.manifest import META_FINGERPRINT, META_ROOT, META_VERSION, SCHEMA  # noqa: E402
from facenet_core.data.pk_batches import generate_pk_batches  # noqa: E402
from facenet_core.data.triplets import generate_triplets  # noqa: E402
from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402

P, K = 32, 4
GIB = 1 << 30
# A child runs the command in-process; `full` first swaps the label reader for the whole-manifest read.
# It reports its own peak RSS (VmHWM, reset by exec): a forked child's ru_maxrss starts at the
# parent's, which holds the labels and the table it wrote.
CHILD = """
import sys
from facenet_core.data import manifest
if sys.argv[1] == "full":
    manifest.read_manifest_labels = manifest.read_manifest
from flows.cli import main
try:
    code = main(sys.argv[3:])
finally:  # --help exits inside main
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    open(sys.argv[2], "w").write(status)
sys.exit(code)
"""


def write_manifest(path: Path, labels: np.ndarray) -> None:
    """A manifest of `labels` with glint-like paths, written as build_manifest writes one."""
    counts = np.bincount(labels)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    within = np.arange(labels.size) - starts
    names = pa.array([f"id_{i}" for i in range(counts.size)], pa.string())
    identity = names.take(pa.array(labels))
    files = pc.binary_join_element_wise(pc.cast(pa.array(within), pa.string()), pa.scalar(".jpg"), "")
    path_column = pc.binary_join_element_wise(identity, files, "/")
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "path": path_column,
            "identity": identity,
            "label": pa.array(labels, pa.int32()),
            "width": pa.array(np.full(labels.size, 112, np.int32)),
            "height": pa.array(np.full(labels.size, 112, np.int32)),
            "bytes": pa.array(rng.integers(3000, 9000, labels.size)),
        },
        schema=SCHEMA,
    )
    metadata = {META_ROOT: b"/data/glint360k", META_FINGERPRINT: b"0" * 64, META_VERSION: b"1"}
    pq.write_table(table.replace_schema_metadata(metadata), path, use_dictionary=["identity"])


def run_child(mode: str, argv: list[str], folder: Path) -> tuple[float, float]:
    """(seconds from start to exit, peak RSS GiB) of one command in a fresh process."""
    report = folder / "peak_rss_kib"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, mode, str(report), *argv], stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    return seconds, int(report.read_text()) * 1024 / GIB


def pk_epoch(labels: np.ndarray, epoch: int) -> np.ndarray:
    return generate_pk_batches(
        labels, seed=0, epoch=epoch, iterations_per_epoch=ITERATIONS, pk_identities=P, pk_images=K
    )


def triplet_epoch(labels: np.ndarray, epoch: int) -> np.ndarray:
    return generate_triplets(
        labels,
        seed=0,
        epoch=epoch,
        iterations_per_epoch=ITERATIONS,
        batch_size=BATCH,
        num_human_identities_per_batch=PER_BATCH,
    )


def in_process(generate, labels: np.ndarray, runs: int) -> dict:
    """Seconds of `runs` epochs drawn in this process, and the peak traced memory of one."""
    seconds = []
    for epoch in range(runs):
        started = time.perf_counter()
        generate(labels, epoch)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    generate(labels, 0)
    peak = tracemalloc.get_traced_memory()[1] / GIB
    tracemalloc.stop()
    return {"seconds_runs": seconds, "seconds_median": statistics.median(seconds), "peak_gib": peak}


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/triplets_command.json")
    args = parser.parse_args()

    labels = synthetic_labels()
    with tempfile.TemporaryDirectory(prefix="bench-triplets-") as tmp:
        folder = Path(tmp)
        manifest = folder / "glint.parquet"
        started = time.perf_counter()
        write_manifest(manifest, labels)
        print(
            f"manifest: {labels.size:,} rows, {np.bincount(labels).size:,} identities, "
            f"{manifest.stat().st_size / GIB:.3f} GiB on disk, written in {time.perf_counter() - started:.0f} s"
        )
        common = ["triplets", "--manifest", str(manifest), "--epoch", "0", "--iterations_per_epoch", str(ITERATIONS)]
        triplets = ["--batch_size", str(BATCH), "--num_human_identities_per_batch", str(PER_BATCH)]
        pk = ["--sampling", "pk", "--pk_identities", str(P), "--pk_images", str(K)]
        commands = {
            "start-up only (--help)": ("labels", ["triplets", "--help"]),
            "full": ("full", [*common, "--out", str(folder / "full.npy"), *triplets]),
            "labels": ("labels", [*common, "--out", str(folder / "labels.npy"), *triplets]),
            "pk": ("labels", [*common, "--out", str(folder / "pk.npy"), *pk]),
        }
        for name in commands:  # warm the page cache and the imports once
            run_child(*commands[name], folder)
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (mode, argv) in commands.items():
                measured[name].append(run_child(mode, argv, folder))
        same = np.array_equal(np.load(folder / "full.npy"), np.load(folder / "labels.npy"))

    generators = {"triplets": triplet_epoch, "pk": pk_epoch}
    generated = {name: in_process(generate, labels, args.runs) for name, generate in generators.items()}

    result: dict = {
        "machine": f"{platform.machine()}, shared 2-core VM",
        "rows": int(labels.size),
        "triplets": ITERATIONS * BATCH,
        "per_batch_identities": PER_BATCH,
        "pk_shape": {"iterations": ITERATIONS, "P": P, "K": K},
        "same_triplets_both_reads": bool(same),
        "generated_in_process": generated,
        "load_average_1_5_15": os.getloadavg(),
    }
    print(f"{'facenet triplets':<44} {'seconds (median)':>16} {'peak RSS GiB (median)':>22}")
    for name, runs in measured.items():
        seconds, rss = statistics.median(s for s, _ in runs), statistics.median(r for _, r in runs)
        result[name] = {"seconds_runs": [s for s, _ in runs], "rss_gib_runs": [r for _, r in runs]}
        result[name].update(seconds_median=seconds, rss_gib_median=rss)
        print(f"{name:<44} {seconds:>16.2f} {rss:>22.3f}  runs: {', '.join(f'{s:.2f}' for s, _ in runs)}")
    result["labels_speedup"] = result["full"]["seconds_median"] / result["labels"]["seconds_median"]
    result["labels_rss_ratio"] = result["full"]["rss_gib_median"] / result["labels"]["rss_gib_median"]
    print(
        f"label-only read: {result['labels_speedup']:.1f}x faster, {result['labels_rss_ratio']:.1f}x less RSS; "
        f"same triplets: {same}"
    )
    for name, figures in generated.items():
        print(
            f"generate {name} in process: median {figures['seconds_median']:.3f} s "
            f"(runs {', '.join(f'{t:.3f}' for t in figures['seconds_runs'])}), "
            f"peak {figures['peak_gib']:.3f} GiB beyond the labels"
        )
    atomic_write_json(args.out, result)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
