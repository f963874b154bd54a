"""Decoding any image file into the RGB uint8 array the detector expects.

Follows the reference alignment script where it is well defined (grayscale replicated, alpha
dropped without compositing, EXIF orientation ignored unless asked) and fixes where it is not:
CMYK is converted to RGB (the reference misread it), 16-bit images are scaled to 8 bits (and
32-bit integer ones with values above 255, as 16-bit), float images with values in [0, 1] are
scaled by 255 (other float images are taken as 0-255 and clipped), two-channel images (gray +
alpha) keep their gray channel (the reference crashed on them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


def is_image_file(path: Path) -> bool:
    """Whether `path` has one of the image extensions the crop stage reads."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a PIL image of any mode."""
    mode = image.mode
    if mode in ("LA", "La"):
        image = image.getchannel(0)
        mode = "L"
    if mode in SIXTEEN_BIT_MODES or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        elif mode != "F" and (mode in SIXTEEN_BIT_MODES or values.max(initial=0) > 255):
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def load_rgb(path: str | Path, exif_transpose: bool = False) -> np.ndarray:
    """Decode `path` (first frame) as (H, W, 3) uint8 RGB; raises OSError/ValueError if unreadable."""
    with Image.open(path) as image:
        image.load()
        if exif_transpose:
            image = ImageOps.exif_transpose(image)
        return to_rgb_array(image)
