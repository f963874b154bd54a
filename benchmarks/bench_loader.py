"""Loader throughput per core on 224x224 PNG crops: TripletDataset vs a seed-style PIL pipeline.

Both read the same generated files in the same run, in the main process (images/s per worker
process); the DataLoader is also timed with --workers processes.

    .venv/bin/python benchmarks/bench_loader.py [--images 240] [--runs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from facenet_core.data.loader import TripletDataset, make_triplet_loader
from facenet_core.data.manifest import build_manifest, read_manifest
from facenet_core.data.transforms import train_transform
from facenet_core.data.triplets import generate_triplets
from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json
from facenet_core.images import open_rgb

MEAN, STD = [0.6071, 0.4609, 0.3944], [0.2457, 0.2175, 0.2129]
IMAGE_SIZE, CROP = 140, 224


def write_crops(root: Path, images: int, per_identity: int = 8) -> None:
    """Face-crop-like PNGs: smooth colour fields plus fine noise (LFW crops average ~60 KB)."""
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"id{i // per_identity:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((CROP, CROP), Image.BICUBIC), dtype=np.int16)
        noisy = np.clip(smooth + rng.integers(-6, 7, size=smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"img{i:05d}.png")


def seed_style(paths: list[str]) -> float:
    """The seed's dataset: Image.open per file, per-image torchvision transforms."""
    transform = T.Compose(
        [
            T.Resize(size=IMAGE_SIZE),
            T.RandomHorizontalFlip(),
            T.RandomRotation(degrees=5),
            T.ToTensor(),
            T.Normalize(mean=MEAN, std=STD),
        ]
    )
    start = time.perf_counter()
    for path in paths:
        transform(Image.open(path))
    return len(paths) / (time.perf_counter() - start)


def decode_only(paths: list[str], opener) -> float:
    start = time.perf_counter()
    for path in paths:
        opener(path)
    return len(paths) / (time.perf_counter() - start)


def dataset_rate(dataset: TripletDataset) -> float:
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return 3 * len(dataset) / (time.perf_counter() - start)


def loader_rate(manifest, triplets, workers: int, batch: int) -> float:
    loader = make_triplet_loader(
        manifest,
        triplets,
        image_size=IMAGE_SIZE,
        mean=MEAN,
        std=STD,
        batch_size=batch,
        num_workers=workers,
        seed=0,
        epoch=0,
    )
    start = time.perf_counter()
    images = sum(3 * len(b[3]) for b in loader)
    return images / (time.perf_counter() - start)


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/loader.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        write_crops(tmp / "root", args.images)
        build_manifest(tmp / "root", tmp / "m.parquet", workers=1, progress=False)
        manifest = read_manifest(tmp / "m.parquet")
        triplets = generate_triplets(
            manifest.labels,
            seed=0,
            epoch=0,
            iterations_per_epoch=args.images // 24,
            batch_size=8,
            num_human_identities_per_batch=4,
        )
        paths = [str(manifest.abspath(int(r))) for r in triplets.ravel()]
        dataset = TripletDataset(manifest, triplets, train_transform(IMAGE_SIZE, MEAN, STD))
        size_kb = statistics.mean(Path(p).stat().st_size for p in paths) / 1024
        rates: dict[str, list[float]] = {k: [] for k in ("seed_decode", "ours_decode", "seed_full", "ours_full")}
        for _ in range(args.runs):
            rates["seed_decode"].append(decode_only(paths, lambda p: Image.open(p).load()))
            rates["ours_decode"].append(decode_only(paths, open_rgb))
            rates["seed_full"].append(seed_style(paths))
            rates["ours_full"].append(dataset_rate(dataset))
        loader = [loader_rate(manifest, triplets, args.workers, 8) for _ in range(args.runs)]
    finally:
        shutil.rmtree(tmp)
    result = {k: statistics.median(v) for k, v in rates.items()}
    result.update(
        runs=rates,
        images_per_run=len(paths),
        mean_png_kib=size_kb,
        loader_workers=args.workers,
        loader_images_per_s=statistics.median(loader),
        loader_runs=loader,
        full_ratio=result["ours_full"] / result["seed_full"],
    )
    print(f"{len(paths)} decodes per run of 224x224 PNG (mean {size_kb:.0f} KiB), median of {args.runs} runs, 1 core:")
    print(f"{'pipeline':<44} {'images/s':>9}")
    for name, key in [
        ("seed-style decode (Image.open + load)", "seed_decode"),
        ("open_rgb decode", "ours_decode"),
        ("seed-style decode + train transforms", "seed_full"),
        ("TripletDataset (open_rgb + train_transform)", "ours_full"),
    ]:
        print(f"{name:<44} {result[key]:>9.0f}")
    print(f"{f'DataLoader, {args.workers} workers, batch 8':<44} {result['loader_images_per_s']:>9.0f}")
    print(f"ratio ours/seed (full pipeline): {result['full_ratio']:.2f}")
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
