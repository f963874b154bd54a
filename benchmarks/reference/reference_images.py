"""The reference image set: every 60th LFW image plus larger pictures built from LFW images.

Used both by mtcnn_reference.py (in the throwaway TensorFlow venv) and by the project's tests, so
it depends only on numpy, Pillow and OpenCV. Each image's pixel sha256 is stored in the fixture
and checked by the tests, so a decoder difference shows up as a skip, not as a false mismatch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

STEP = 60
LARGE_SIZES = ((640, 480), (1280, 720))
LARGE_PER_SIZE = 6


def lfw_files(lfw_root: Path) -> list[Path]:
    """All LFW images under `lfw_root` (the lfw-deepfunneled folder), sorted by relative path."""
    return sorted(lfw_root.glob("*/*.jpg"), key=lambda p: p.relative_to(lfw_root).as_posix())


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an RGB uint8 array."""
    return np.asarray(Image.open(path).convert("RGB"))


def image_sha256(img: np.ndarray) -> str:
    """Hash of an image's shape and pixels."""
    return hashlib.sha256(repr(img.shape).encode() + np.ascontiguousarray(img).tobytes()).hexdigest()


def large_image(parts: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """One LFW picture stretched to `size`, or four tiled 2x2 (several faces) when four are given."""
    width, height = size
    if len(parts) == 1:
        return cv2.resize(parts[0], (width, height), interpolation=cv2.INTER_LINEAR)
    tiles = [cv2.resize(p, (width // 2, height // 2), interpolation=cv2.INTER_LINEAR) for p in parts]
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def reference_images(lfw_root: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB array) for the whole reference set, in a fixed order."""
    files = lfw_files(lfw_root)
    picked = files[::STEP]
    for path in picked:
        yield path.relative_to(lfw_root).as_posix(), read_rgb(path)
    donors = files[7 :: STEP * 4]
    k = 0
    for size in LARGE_SIZES:
        for j in range(LARGE_PER_SIZE):
            parts = [read_rgb(donors[(k + i) % len(donors)]) for i in range(4 if j % 2 else 1)]
            names = "+".join(p.stem for p in [donors[(k + i) % len(donors)] for i in range(len(parts))])
            k += len(parts)
            yield f"large/{size[0]}x{size[1]}/{j}:{names}", large_image(parts, size)
