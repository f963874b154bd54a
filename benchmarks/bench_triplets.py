"""Triplet generation at glint360k scale: vectorised generate_triplets vs a seed-style Python loop.

Synthetic labels: 360,232 identities, 17.09M images, skewed (gamma) sizes with minimum 1.
The per-triplet loop follows the seed's algorithm (np.random.choice per draw, rejection loops,
a dict of per-identity row lists); it runs on a fraction of the iterations and is extrapolated.

    .venv/bin/python benchmarks/bench_triplets.py [--runs 5] [--loop_iterations 50]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

from facenet_core.data.triplets import generate_triplets
from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json

IDENTITIES, IMAGES = 360_232, 17_090_000
ITERATIONS, BATCH, PER_BATCH = 5000, 544, 32
GIB = 1 << 30


def synthetic_labels(seed: int = 0) -> np.ndarray:
    """Sorted int32 labels with a skewed (gamma) images-per-identity distribution summing to IMAGES."""
    rng = np.random.default_rng(seed)
    raw = rng.gamma(shape=1.2, size=IDENTITIES)
    scaled = raw / raw.sum() * (IMAGES - IDENTITIES)
    counts = 1 + np.floor(scaled).astype(np.int64)
    counts[np.argsort(np.floor(scaled) - scaled)[: IMAGES - counts.sum()]] += 1
    return np.repeat(np.arange(IDENTITIES, dtype=np.int32), counts)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def seed_style_classes(labels: np.ndarray) -> dict[int, list[int]]:
    """The seed's per-identity lists of row ids, built row by row."""
    face_classes: dict[int, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        face_classes.setdefault(label, []).append(row)
    return face_classes


def seed_style_loop(face_classes: dict, iterations: int, seed: int = 0) -> np.ndarray:
    """The seed's per-triplet loop (legacy global-style RandomState, rejection sampling)."""
    rs = np.random.RandomState(seed)
    classes = np.array(list(face_classes))
    triplets = []
    for _ in range(iterations):
        classes_per_batch = rs.choice(classes, size=PER_BATCH, replace=False)
        for _ in range(BATCH):
            pos_class = rs.choice(classes_per_batch)
            neg_class = rs.choice(classes_per_batch)
            while len(face_classes[pos_class]) < 2:
                pos_class = rs.choice(classes_per_batch)
            while pos_class == neg_class:
                neg_class = rs.choice(classes_per_batch)
            pos_rows, neg_rows = face_classes[pos_class], face_classes[neg_class]
            if len(pos_rows) == 2:
                ianc, ipos = rs.choice(2, size=2, replace=False)
            else:
                ianc = rs.randint(0, len(pos_rows))
                ipos = rs.randint(0, len(pos_rows))
                while ianc == ipos:
                    ipos = rs.randint(0, len(pos_rows))
            ineg = rs.randint(0, len(neg_rows))
            triplets.append([pos_rows[ianc], pos_rows[ipos], neg_rows[ineg], pos_class, neg_class])
    return np.array(triplets)


def vectorised(labels: np.ndarray, epoch: int) -> np.ndarray:
    return generate_triplets(
        labels,
        seed=0,
        epoch=epoch,
        iterations_per_epoch=ITERATIONS,
        batch_size=BATCH,
        num_human_identities_per_batch=PER_BATCH,
    )


def traced_peak(fn, *args) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--loop_runs", type=int, default=3)
    parser.add_argument("--loop_iterations", type=int, default=50, help="iterations the loop runs (of 5000)")
    parser.add_argument("--out", default="benchmarks/results/triplets.json")
    args = parser.parse_args()

    labels = synthetic_labels()
    counts = np.bincount(labels)
    print(
        f"labels: {IDENTITIES} identities, {labels.size} images, per identity mean {counts.mean():.1f}, "
        f"min {counts.min()}, median {np.median(counts):.0f}, max {counts.max()}, "
        f"singletons {(counts == 1).sum()}; manifest arrays {labels.nbytes / GIB:.3f} GiB"
    )

    times = []
    for run in range(args.runs):
        start = time.perf_counter()
        vectorised(labels, run)
        times.append(time.perf_counter() - start)
    vec_peak = traced_peak(vectorised, labels, 0)

    rss0 = rss_bytes()
    start = time.perf_counter()
    face_classes = seed_style_classes(labels)
    dict_seconds = time.perf_counter() - start
    dict_rss = rss_bytes() - rss0
    loop_times = []
    for run in range(args.loop_runs):
        start = time.perf_counter()
        seed_style_loop(face_classes, args.loop_iterations, seed=run)
        loop_times.append(time.perf_counter() - start)
    loop_peak = traced_peak(seed_style_loop, face_classes, args.loop_iterations)
    scale = ITERATIONS / args.loop_iterations
    loop_total = dict_seconds + statistics.median(loop_times) * scale
    loop_memory = dict_rss + loop_peak * scale

    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core VM",
        "identities": IDENTITIES,
        "images": int(labels.size),
        "triplets": ITERATIONS * BATCH,
        "vectorised_seconds_runs": times,
        "vectorised_seconds_median": statistics.median(times),
        "vectorised_peak_gib": vec_peak / GIB,
        "loop_iterations_measured": args.loop_iterations,
        "loop_seconds_runs": loop_times,
        "loop_dict_build_seconds": dict_seconds,
        "loop_dict_rss_gib": dict_rss / GIB,
        "loop_peak_gib_measured": loop_peak / GIB,
        "loop_seconds_extrapolated": loop_total,
        "loop_memory_gib_extrapolated": loop_memory / GIB,
        "speedup": loop_total / statistics.median(times),
    }
    rows = [
        ("vectorised generate_triplets", f"{result['vectorised_seconds_median']:.3f}", f"{vec_peak / GIB:.3f}"),
        (
            f"seed-style loop ({args.loop_iterations}/{ITERATIONS} iters, x{scale:.0f}, + dict build)",
            f"{loop_total:.1f}",
            f"{loop_memory / GIB:.2f}",
        ),
    ]
    print(f"{'method':<62} {'seconds':>9} {'peak GiB':>9}")
    for row in rows:
        print(f"{row[0]:<62} {row[1]:>9} {row[2]:>9}")
    print(f"speed-up: {result['speedup']:.0f}x (vectorised runs: {', '.join(f'{t:.3f}' for t in times)})")
    atomic_write_json(args.out, result)
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
