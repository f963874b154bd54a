"""Faces in photos held in memory (arrays, PIL images or files), each with the crop the crop stage
would save for it: the same decoding, detector, one-face rule, margin, clipping and resize, or the
same alignment on the landmarks (`facenet_core.detect.select.face_crop`, by `CropOptions.method`),
so a model sees a photo's face as it saw its training crops.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps

from facenet_core.detect.detector import Faces, shared_detector
from facenet_core.detect.options import CropOptions
from facenet_core.detect.select import choose_face, crop_box, face_crop, is_empty, too_small
from facenet_core.errors import UserError
from facenet_core.images import load_rgb, to_rgb_array
from facenet_core.torch_settings import ONE_TORCH_THREAD

Photo = np.ndarray | Image.Image | str | os.PathLike
Policy = Literal["one", "all"]
POLICIES = ("one", "all")


@dataclass(frozen=True, eq=False)
class Face:
    """A face found in a photo.

    `box`: the crop box (x1, y1, x2, y2), the detector's box grown by margin/2 a side, clipped to
    the photo and truncated, as the crop stage records it; `score`: the detector's confidence;
    `landmarks`: 5 (x, y) points (eyes, nose, mouth corners); `crop`: read-only uint8 S x S x 3
    RGB, S the crop size, the pixels the crop stage would save as the face's PNG (the box resized,
    or the face aligned on its landmarks, by the options' method).
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...]
    crop: np.ndarray


@dataclass(frozen=True, eq=False)
class PhotoFaces:
    """The faces kept in one photo (none when there is no face, or the photo is smaller than the
    minimum face size) and the photo's size."""

    width: int
    height: int
    faces: tuple[Face, ...]


def detect_faces(
    images: Sequence[Photo],
    options: CropOptions,
    *,
    policy: Policy = "one",
    device: str | torch.device | None = None,
) -> list[PhotoFaces]:
    """The faces of each photo, in order: uint8 H x W x 3 RGB arrays, PIL images or image files.

    `options`: the crop stage's (crop method, size, margin, detector settings, EXIF rule, batch size
    and pixels; a model's come from `ModelContract.crop_options`). `policy`: "one" keeps the face the
    crop stage keeps (largest and most central), "all" every face in the detector's order. `device`
    ("auto", "cpu", "cuda", "cuda:N") replaces `options.device`. Photos are decoded and detected
    `options.batch_size` at a time, detection on one torch thread as in the crop stage (MTCNN's small
    layers: 16 LFW photos on 2 busy cores, 2.0 s on one thread, 9.8 s on two). An unreadable file
    or a malformed array is a UserError.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if device is not None:
        options = replace(options, device=str(device))
    detector = shared_detector(
        options.resolved_device(), options.min_face_size, options.thresholds, options.factor, options.batch_pixels
    )
    found: list[PhotoFaces] = []
    for start in range(0, len(images), options.batch_size):
        pixels = [
            _rgb(image, index, options.exif_transpose)
            for index, image in enumerate(images[start : start + options.batch_size], start)
        ]
        small = [too_small(*img.shape[:2], options.min_face_size) for img in pixels]
        with ONE_TORCH_THREAD:
            detected = iter(detector.detect([img for img, skip in zip(pixels, small, strict=True) if not skip]))
        for img, skip in zip(pixels, small, strict=True):
            faces = None if skip else next(detected)
            found.append(PhotoFaces(img.shape[1], img.shape[0], _kept_faces(img, faces, options, policy)))
    return found


def _kept_faces(img: np.ndarray, faces: Faces | None, options: CropOptions, policy: Policy) -> tuple[Face, ...]:
    """The faces `policy` keeps whose crop box holds pixels, with their crops."""
    if faces is None or faces.boxes.shape[0] == 0:
        return ()
    height, width = img.shape[:2]
    indices = [choose_face(faces.boxes, height, width)] if policy == "one" else range(faces.boxes.shape[0])
    kept = []
    for i in indices:
        box = crop_box(faces.boxes[i], options.margin, height, width)
        if is_empty(box):
            continue
        crop = np.asarray(face_crop(img, box, faces.points[i], options.image_size, options.method))
        crop.flags.writeable = False
        points = faces.points[i]
        landmarks = tuple((float(points[k]), float(points[k + 5])) for k in range(5))
        kept.append(Face(box, float(faces.boxes[i, 4]), landmarks, crop))
    return tuple(kept)


def _rgb(image: Photo, index: int, exif_transpose: bool) -> np.ndarray:
    """The uint8 H x W x 3 RGB pixels of a photo, decoded from a file as the crop stage decodes it."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"image {index}: expected a uint8 H x W x 3 RGB array, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)
    if isinstance(image, Image.Image):
        return to_rgb_array(ImageOps.exif_transpose(image) if exif_transpose else image)
    try:
        return load_rgb(image, exif_transpose)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UserError(
            f"image {os.fspath(image)} cannot be read ({type(error).__name__}: {error}): give an image file "
            "(JPEG, PNG, ...)"
        ) from None
