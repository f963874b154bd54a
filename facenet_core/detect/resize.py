"""Image pyramid and resampling with OpenCV's INTER_AREA, as the reference detector resamples.

OpenCV's area filter (its linear variant when enlarging) on uint8 pyramid levels, rounded back to
uint8, and on float64 candidate crops; these exact values decide the boxes.
"""

from __future__ import annotations

import cv2
import numpy as np


def resample(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """`img` (H, W, C) resized to (height, width) with INTER_AREA, dtype kept."""
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales m * factor**k (m = 12 / min_face_size) while the scaled shorter side is >= 12 px."""
    m = 12.0 / min_face_size
    shorter = min(height, width) * m
    scales = []
    count = 0
    while shorter >= 12:
        scales.append(m * np.power(factor, count))
        shorter = shorter * factor
        count += 1
    return scales


def level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) of the pyramid level at `scale` (rounded up)."""
    return int(np.ceil(height * scale)), int(np.ceil(width * scale))


def _padded_crop(img: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """Float64 pixels of the 1-based box (x1, y1, x2, y2); the parts outside the image are zero."""
    height, width = img.shape[:2]
    if 1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height:
        return img[y1 - 1 : y2, x1 - 1 : x2].astype(np.float64)
    buf = np.zeros((max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1), 3), dtype=np.float64)
    sx1, sy1, sx2, sy2 = max(x1, 1), max(y1, 1), min(x2, width), min(y2, height)
    if sx2 >= sx1 and sy2 >= sy1:
        buf[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = img[sy1 - 1 : sy2, sx1 - 1 : sx2]
    return buf


def candidate_crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Float64 (N, size, size, 3) crops of integer 1-based boxes; parts outside the image stay zero."""
    out = np.empty((boxes.shape[0], size, size, 3), dtype=np.float64)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int32).tolist()):
        cv2.resize(_padded_crop(img, x1, y1, x2, y2), (size, size), dst=out[k], interpolation=cv2.INTER_AREA)
    return out
