"""Per-channel RGB mean and std of a dataset, exact over every pixel (or a seeded sample of images).

Each image contributes a 3 x 256 histogram of its 8-bit values; histograms add up exactly in
integers, so every pixel weighs the same however the work is split (the seed's script averaged
per batch, over-weighting its last partial batch).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
from tqdm import tqdm

from facenet_core.data.manifest import read_manifest
from facenet_core.images import open_rgb
from facenet_core.workers import cpu_cores, process_pool

IMAGES_PER_TASK = 256
_CHANNEL_SHIFT = np.array([0, 256, 512], dtype=np.int64)


def _histogram(paths: list[str]) -> np.ndarray:
    """(3, 256) int64 counts of each channel's values over the images at `paths`."""
    total = np.zeros(768, dtype=np.int64)
    for path in paths:
        pixels = np.asarray(open_rgb(path), dtype=np.uint8).reshape(-1, 3)
        total += np.bincount((pixels + _CHANNEL_SHIFT).ravel(), minlength=768)
    return total.reshape(3, 256)


def moments(histogram: np.ndarray) -> tuple[list[float], list[float], int]:
    """(mean, population std) per channel on the [0, 1] scale, and the pixel count."""
    values = np.arange(256, dtype=np.float64) / 255.0
    pixels = int(histogram[0].sum())
    if pixels == 0:
        raise ValueError("no pixels to measure")
    mean = (histogram * values).sum(axis=1) / pixels
    var = (histogram * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / pixels
    return mean.tolist(), np.sqrt(var).tolist(), pixels


def dataset_stats(
    manifest_path: str | os.PathLike,
    *,
    sample: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """normalize_mean / normalize_std of the manifest's images (all, or `sample` drawn with `seed`)."""
    manifest = read_manifest(manifest_path)
    rows = np.arange(manifest.num_images)
    if sample is not None:
        if sample < 1:
            raise ValueError(f"sample must be a positive number of images, got {sample}")
        if sample < rows.size:
            rows = np.sort(np.random.default_rng(seed).choice(rows.size, size=sample, replace=False))
    paths = [str(manifest.abspath(int(i))) for i in rows]
    chunks = [paths[i : i + IMAGES_PER_TASK] for i in range(0, len(paths), IMAGES_PER_TASK)]
    workers = workers or cpu_cores()
    histogram = np.zeros((3, 256), dtype=np.int64)
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(paths), unit="image", desc="stats", disable=not progress))
        mapper = stack.enter_context(process_pool(workers)).map if workers > 1 else map
        for chunk, part in zip(chunks, mapper(_histogram, chunks), strict=True):
            histogram += part
            bar.update(len(chunk))
    mean, std, pixels = moments(histogram)
    return {
        "normalize_mean": [round(m, 4) for m in mean],
        "normalize_std": [round(s, 4) for s in std],
        "mean_exact": mean,
        "std_exact": std,
        "num_images": len(paths),
        "num_pixels": pixels,
        "sample": sample,
        "seed": seed,
        "manifest_fingerprint": manifest.fingerprint,
    }
