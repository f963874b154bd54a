"""Which files are images, and how any of them becomes 8-bit RGB: the one definition that the manifest
scan, the crop stage, LFW pair resolution and the training and evaluation loaders share.

Extensions: the formats people keep photographs of faces in that Pillow decodes in every build
it ships (JPEG, PNG, BMP, GIF, TIFF, WebP, the Netpbm family, and JPEG 2000, which the ISO/IEC
19794-5 face-image standard allows), compared in lower case. Other formats Pillow registers are
left out on purpose: icons, layered or drawing formats (ICO, PSD, EPS, WMF), scientific stubs
without a decoder (FITS, GRIB, HDF5) and video (MPEG) hold no face photographs.

Colour modes follow the reference alignment script where it is well defined (greyscale replicated,
alpha dropped without compositing, EXIF orientation ignored unless asked) and fix it where it is
not: CMYK is converted (the reference misread it), 16-bit images are scaled to 8 bits (65535 ->
255: value / 257), so are 32-bit integer images with values above 255 (taken as 16-bit; beyond
65535 clipped), float images with values in [0, 1] are scaled by 255 (other float images are taken
as 0-255 and clipped), grey + alpha keeps its grey channel, bilevel images become 0 and 255.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".jp2",
        ".j2k",
    }
)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_WIDE_GREY_MODES = _SIXTEEN_BIT_MODES | {"I", "F"}


def is_image_name(name: str | os.PathLike) -> bool:
    """Whether a file name (or path) ends in one of IMAGE_EXTENSIONS, in any letter case."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_EXTENSIONS


def _wide_grey(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float greyscale image as 8-bit greyscale (PIL's own conversion clips)."""
    values = np.asarray(image, dtype=np.float64)
    peak = values.max(initial=0.0)
    if image.mode == "F":
        if peak <= 1.0:
            values = values * 255.0
    elif image.mode in _SIXTEEN_BIT_MODES or peak > 255.0:
        values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` in RGB mode with 8 bits per channel, whatever its mode (the image itself when already RGB)."""
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GREY_MODES:
        image = _wide_grey(image)
    elif image.mode in ("LA", "La"):
        image = image.getchannel(0)
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # palettes with transparency expand without PIL's warning
    return image.convert("RGB")


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a PIL image of any mode (`to_rgb`'s rules)."""
    return np.ascontiguousarray(np.asarray(to_rgb(image), dtype=np.uint8))


def open_rgb(path: str | os.PathLike, exif_transpose: bool = False) -> Image.Image:
    """Decode the first frame of the image at `path` as RGB, turned upright by its EXIF orientation when
    `exif_transpose`; the file is closed on return. Raises OSError/ValueError when it is unreadable."""
    with Image.open(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image) if exif_transpose else image
        return to_rgb(upright)


def load_rgb(path: str | os.PathLike, exif_transpose: bool = False) -> np.ndarray:
    """`open_rgb` as the (H, W, 3) uint8 array the detector takes."""
    return to_rgb_array(open_rgb(path, exif_transpose))
