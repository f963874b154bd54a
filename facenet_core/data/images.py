"""Open any image file as 8-bit RGB: the one place where colour modes are normalised."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

# Extensions the manifest accepts as images; anything else in an identity folder is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled to 8 bits (PIL's own conversion clips everything above 255)."""
    values = np.asarray(image, dtype=np.float64)
    peak = float(values.max()) if values.size else 0.0
    if peak > 255.0:
        values = values * (255.0 / (65535.0 if peak <= 65535.0 else peak))
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as RGB: greyscale replicated, palettes expanded, alpha dropped, CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GREY_MODES:
        return _wide_grey_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode the image at `path` fully and return it in RGB mode (file closed on return)."""
    image = Image.open(path)
    try:
        image.load()
        rgb = to_rgb(image)
    except BaseException:
        image.close()
        raise
    if getattr(image, "fp", None) is None:
        return rgb  # single-frame files: load() has already closed the file
    if rgb is image:
        rgb = image.copy()
    image.close()
    return rgb
