"""The reference image set: every 60th LFW image plus larger pictures built from LFW images.

Used both by mtcnn_reference.py (in the throwaway TensorFlow venv) and by the project's tests, so
it depends only on numpy, Pillow and OpenCV. Each image's pixel sha256 is stored in the fixture
and checked by the tests, so a decoder difference shows up as a skip, not as a false mismatch.
An image's name alone rebuilds it, so the few LFW files the set is made of are enough to check a
detector elsewhere (a GPU machine):

    python benchmarks/reference/reference_images.py copy --lfw ../shared/data/lfw/lfw-deepfunneled \
        --fixture tests/detect/fixtures/reference_lfw.json --out .device/lfw/lfw-deepfunneled
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
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


def _lfw_file(stem: str) -> str:
    """LFW's relative path of a picture stem: `George_W_Bush_0001` -> `George_W_Bush/George_W_Bush_0001.jpg`."""
    return f"{stem.rsplit('_', 1)[0]}/{stem}.jpg"


def _parse_large(name: str) -> tuple[tuple[int, int], list[str]]:
    """`large/640x480/3:StemA+StemB+...` -> ((640, 480), LFW files of the parts)."""
    shape, stems = name.removeprefix("large/").split(":", 1)
    width, height = map(int, shape.split("/")[0].split("x"))
    return (width, height), [_lfw_file(stem) for stem in stems.split("+")]


def source_files(name: str) -> list[str]:
    """The LFW files (relative paths) the reference image called `name` is made of."""
    return _parse_large(name)[1] if name.startswith("large/") else [name]


def named_image(lfw_root: Path, name: str) -> np.ndarray:
    """The reference image called `name` (as reference_images names it), rebuilt from its LFW files."""
    if not name.startswith("large/"):
        return read_rgb(lfw_root / name)
    size, files = _parse_large(name)
    return large_image([read_rgb(lfw_root / f) for f in files], size)


def _copy_sources(lfw_root: Path, fixture: Path, out: Path) -> None:
    names = [row["name"] for row in json.loads(fixture.read_text())["images"]]
    files = sorted({f for name in names for f in source_files(name)})
    for relative in files:
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lfw_root / relative, out / relative)
    print(f"{len(files)} LFW files for {len(names)} reference images copied to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Copy the LFW files the reference images are made of.")
    parser.add_argument("command", choices=["copy"])
    parser.add_argument("--lfw", required=True, help="the lfw-deepfunneled folder")
    parser.add_argument("--fixture", required=True, help="the reference numbers (names of the images)")
    parser.add_argument("--out", required=True, help="a folder to hold the copies, in LFW's layout")
    args = parser.parse_args()
    _copy_sources(Path(args.lfw), Path(args.fixture), Path(args.out))
