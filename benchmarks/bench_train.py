"""Training-step throughput on this CPU: the engine's train_step vs a seed-style step, same batch.

Both take one forward pass over anchors+positives+negatives and an Adagrad step with the seed's
settings. The seed-style step is fp32, NCHW, and selects triplets on the host (distances
`.cpu().numpy()`, np.where, then indexing) every step; the engine's step selects with masks on the
device and syncs nothing. Synthetic images (no data loading), interleaved runs, medians reported.

    .venv/bin/python benchmarks/bench_train.py [--batch_size 8] [--steps 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json
from facenet_core.models import create_model
from facenet_core.train.optim import make_optimizer
from facenet_core.train.step import StepOptions, train_step

MARGIN = 0.2


def seed_style_step(model, optimizer, batch) -> int:
    """The seed's step: host-side selection, then the mean hinge over the selected triplets."""
    anchors, positives, negatives = batch
    embeddings = model(torch.cat((anchors, positives, negatives)))
    a, p, n = embeddings.chunk(3)
    pdist = torch.nn.PairwiseDistance(p=2)
    pos, neg = pdist(a, p), pdist(a, n)
    valid = np.where((neg - pos < MARGIN).cpu().numpy().flatten() == 1)
    a, p, n = a[valid], p[valid], n[valid]
    loss = torch.mean(torch.clamp(MARGIN + pdist(a, p) - pdist(a, n), min=0.0))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return len(valid[0])


def make_batch(batch_size: int, image_size: int, channels_last: bool):
    generator = torch.Generator().manual_seed(0)
    parts = [torch.randn(batch_size, 3, image_size, image_size, generator=generator) for _ in range(3)]
    if channels_last:
        parts = [p.contiguous(memory_format=torch.channels_last) for p in parts]
    return parts


def images_per_second(variant: str, architecture: str, batch_size: int, image_size: int, steps: int) -> float:
    """One run: a warm-up step, then `steps` timed steps."""
    torch.manual_seed(0)
    channels_last = variant == "engine_channels_last"
    model = create_model(architecture, 512)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = make_optimizer("adagrad", model.parameters(), 0.075)
    batch = make_batch(batch_size, image_size, channels_last)
    options = StepOptions(
        margin=MARGIN, semihard=False, amp_dtype=None, channels_last=channels_last, grad_clip_norm=None
    )
    cpu = torch.device("cpu")

    def step() -> None:
        if variant == "seed_style":
            seed_style_step(model, optimizer, batch)
        else:
            train_step(model, optimizer, None, batch, options, cpu)

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return 3 * batch_size * steps / (time.perf_counter() - started)


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", nargs="+", default=["resnet18", "resnet34"])
    parser.add_argument("--batch_size", type=int, default=8, help="triplets per step (3x images)")
    parser.add_argument("--image_size", type=int, default=140)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per variant (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default="benchmarks/results/train_cpu.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = ("seed_style", "engine", "engine_channels_last")
    rows = []
    for architecture in args.architectures:
        samples = {variant: [] for variant in variants}
        for _ in range(args.runs):
            for variant in variants:
                samples[variant].append(
                    images_per_second(variant, architecture, args.batch_size, args.image_size, args.steps)
                )
        baseline = statistics.median(samples["seed_style"])
        for variant in variants:
            median = statistics.median(samples[variant])
            rows.append(
                {
                    "architecture": architecture,
                    "variant": variant,
                    "images_per_second": median,
                    "runs": samples[variant],
                    "ratio_vs_seed_style": median / baseline,
                }
            )
    print(f"{'model':<10} {'variant':<22} {'images/s':>9} {'x seed':>7}")
    for row in rows:
        print(
            f"{row['architecture']:<10} {row['variant']:<22} {row['images_per_second']:9.1f} "
            f"{row['ratio_vs_seed_style']:7.2f}"
        )
    result = {
        "benchmark": "train_step_cpu",
        "machine": {
            "cpus": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "batch_size_triplets": args.batch_size,
        "image_size": args.image_size,
        "steps_per_run": args.steps,
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
