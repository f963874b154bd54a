"""Fixtures of the data tests: tiny image trees written in milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB", value: int = 0) -> Path:
    """A small image of `mode` whose pixels depend on `value` (distinct values, distinct bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)
    return path


@pytest.fixture
def image_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: root/<identity>/<identity>_<i>.png with counts[identity] distinct images each."""

    def make(counts: dict[str, int], size: tuple[int, int] = (8, 6), root: Path | None = None) -> Path:
        root = root or tmp_path / "root"
        value = 0
        for identity, count in counts.items():
            (root / identity).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                value += 1
                write_image(root / identity / f"{identity}_{i:04d}.png", size=size, value=value)
        return root

    return make
