"""GPU training-step benchmark: resnet34, 140 px, 544 triplets; fp32 vs bf16, channels_last, compile.

Runs the engine's train_step (one fused forward, on-device selection, the seed's Adagrad) on
synthetic images resident on the GPU, so it measures the model step, not data loading. Reports
images/s and peak allocated memory per variant. `--smoke` runs every code path on the CPU with a
tiny batch (no figures worth reporting) to check the script before spending GPU time.

    .venv/bin/python benchmarks/bench_train_gpu.py                 # on a CUDA machine
    .venv/bin/python benchmarks/bench_train_gpu.py --smoke         # anywhere
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import torch

from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json
from facenet_core.models import create_model
from facenet_core.train.optim import make_optimizer
from facenet_core.train.step import StepOptions, train_step

GIB = 1 << 30


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(args: argparse.Namespace, device: torch.device, amp: str, channels_last: bool, compiled: bool) -> dict:
    """Warm up (compilation included), then time `args.steps` steps; images/s and peak memory."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(args.architecture, 512).to(device=device, memory_format=memory_format).train()
    optimizer = make_optimizer("adagrad", model.parameters(), 0.075)
    step_model = torch.compile(model) if compiled else model
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    batch = [torch.randn(shape, device=device) for _ in range(3)]
    options = StepOptions(
        margin=0.2,
        semihard=False,
        amp_dtype=torch.bfloat16 if amp == "bf16" else None,
        channels_last=channels_last,
        grad_clip_norm=None,
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        stats = train_step(step_model, optimizer, None, batch, options, device)
    _sync(device)
    warmup_seconds = time.perf_counter() - started
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(args.steps):
            stats = train_step(step_model, optimizer, None, batch, options, device)
        _sync(device)
        timings.append(3 * args.batch_size * args.steps / (time.perf_counter() - started))
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None
    return {
        "amp": amp,
        "channels_last": channels_last,
        "compile": compiled,
        "images_per_second": statistics.median(timings),
        "images_per_second_runs": timings,
        "peak_memory_gib": peak,
        "warmup_seconds": warmup_seconds,
        "final_loss": float(stats[0]),
    }


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="resnet34")
    parser.add_argument("--batch_size", type=int, default=544, help="triplets per step (3x images)")
    parser.add_argument("--image_size", type=int, default=140)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compilation happens here)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--amp", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--channels_last", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument(
        "--compile",
        nargs="+",
        default=None,
        choices=["off", "on"],
        help="default: off and on; --smoke: off (inductor on the CPU takes minutes)",
    )
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny batch: check every path runs")
    parser.add_argument("--out", default="benchmarks/results/train_gpu.json")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.image_size, args.warmup, args.steps, args.repeats = 2, 64, 1, 1, 1
        device = torch.device("cpu")
        args.compile = args.compile or ["off"]
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
    else:
        raise SystemExit("no CUDA device: run with --smoke to check the script on the CPU")
    args.compile = args.compile or ["off", "on"]
    rows = []
    for amp, cl, comp in itertools.product(args.amp, args.channels_last, args.compile):
        row = run_variant(args, device, amp, cl == "on", comp == "on")
        rows.append(row)
        peak = f"{row['peak_memory_gib']:.2f}" if row["peak_memory_gib"] is not None else "-"
        print(
            f"{amp:<5} channels_last={cl:<3} compile={comp:<3} {row['images_per_second']:9.1f} images/s "
            f"peak {peak} GiB (warm-up {row['warmup_seconds']:.1f} s)",
            flush=True,
        )
    baseline = next((r for r in rows if r["amp"] == "fp32" and not r["channels_last"] and not r["compile"]), rows[0])
    for row in rows:
        row["ratio_vs_fp32_plain"] = row["images_per_second"] / baseline["images_per_second"]
    result = {
        "benchmark": "train_step_gpu" if not args.smoke else "train_step_gpu_smoke",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "architecture": args.architecture,
        "batch_size_triplets": args.batch_size,
        "image_size": args.image_size,
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
