"""Image pyramid and resampling with OpenCV's INTER_AREA, as the reference detector resamples.

OpenCV's area filter (its linear variant when enlarging) on uint8 pyramid levels, rounded back to
uint8, and on float64 candidate crops; these exact values decide the boxes. A candidate box of a
large photo can be thousands of pixels wide (24 bytes a pixel as float64): those are shrunk band by
band of source rows with OpenCV's own weights and order of operations, to the same bits.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Candidate boxes of more pixels than this are shrunk band by band instead of as one float64 crop.
BANDED_PIXELS = 1 << 18
BAND_BYTES = 4 << 20


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


def _padded_pixels(img: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """uint8 pixels of the 1-based box (x1, y1, x2, y2); the parts outside the image are zero."""
    height, width = img.shape[:2]
    if 1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height:
        return img[y1 - 1 : y2, x1 - 1 : x2]
    buf = np.zeros((max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1), 3), dtype=np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 1), max(y1, 1), min(x2, width), min(y2, height)
    if sx2 >= sx1 and sy2 >= sy1:
        buf[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = img[sy1 - 1 : sy2, sx1 - 1 : sx2]
    return buf


def _padded_crop(img: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """Float64 pixels of the 1-based box (x1, y1, x2, y2); the parts outside the image are zero."""
    return _padded_pixels(img, x1, y1, x2, y2).astype(np.float64)


def _area_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA table for shrinking one axis (computeResizeAreaTab): per tap, in OpenCV's
    order, the destination index, the source index and the weight (a float32, as OpenCV stores it)."""
    scale = src / dst
    taps: list[tuple[int, int, float]] = []
    for d in range(dst):
        start = d * scale
        end = start + scale
        cell = min(scale, src - start)
        first, last = math.ceil(start), min(math.floor(end), src - 1)
        first = min(first, last)
        if first - start > 1e-3:
            taps.append((d, first - 1, (first - start) / cell))
        taps += [(d, s, 1.0 / cell) for s in range(first, last)]
        if end - last > 1e-3:
            taps.append((d, last, min(end - last, 1.0, cell) / cell))
    dst_index, src_index, weight = zip(*taps, strict=True)
    return np.array(dst_index), np.array(src_index), np.array(weight, np.float32).astype(np.float64)


def _by_rank(dst_index: np.ndarray) -> list[np.ndarray]:
    """Taps grouped by their rank among their destination's taps: group r holds every r-th tap."""
    starts = np.flatnonzero(np.r_[True, dst_index[1:] != dst_index[:-1]])
    rank = np.arange(dst_index.size) - np.repeat(starts, np.diff(np.r_[starts, dst_index.size]))
    return [np.flatnonzero(rank == r) for r in range(rank.max() + 1)]


def _integer_scale(src: int, dst: int) -> bool:
    """Whether OpenCV takes this axis's scale as an integer (its block-average path when both are)."""
    scale = 1.0 / (dst / src)
    return abs(scale - round(scale)) < np.finfo(np.float64).eps


def _banded_area(img: np.ndarray, x1: int, y1: int, x2: int, y2: int, size: int, out: np.ndarray) -> None:
    """cv2.resize(_padded_crop(img, x1, y1, x2, y2), (size, size), INTER_AREA) when shrinking, bit for bit,
    reading uint8 bands of source rows: OpenCV sums each source row's weighted pixels per destination
    column, then those rows' sums weighted per destination row, in double and in that order."""
    height, width = y2 - y1 + 1, x2 - x1 + 1
    band = max(BAND_BYTES // (3 * width), 1)
    if _integer_scale(height, size) and _integer_scale(width, size):
        # Block averages: integer sums (exact in any order) times 1.f / area.
        rows, cols = height // size, width // size
        band = max(band // rows, 1) * rows
        factor = np.float64(np.float32(1.0) / np.float32(rows * cols))
        for top in range(0, height, band):
            pixels = _padded_pixels(img, x1, y1 + top, x2, y1 + min(top + band, height) - 1)
            sums = pixels.reshape(-1, rows, size, cols, 3).sum(axis=(1, 3), dtype=np.int64)
            out[top // rows : top // rows + sums.shape[0]] = sums * factor
        return
    x_dst, x_src, x_weight = _area_taps(width, size)
    y_dst, y_src, y_weight = _area_taps(height, size)
    x_ranks = _by_rank(x_dst)
    y_first = np.r_[True, y_dst[1:] != y_dst[:-1]]
    tap = 0
    for top in range(0, height, band):
        bottom = min(top + band, height)
        pixels = _padded_pixels(img, x1, y1 + top, x2, y1 + bottom - 1)
        rows = np.zeros((bottom - top, size, 3))
        for group in x_ranks:
            rows[:, x_dst[group]] += pixels[:, x_src[group]] * x_weight[group][None, :, None]
        while tap < y_src.size and y_src[tap] < bottom:
            weighted = y_weight[tap] * rows[y_src[tap] - top]
            if y_first[tap]:
                out[y_dst[tap]] = weighted
            else:
                out[y_dst[tap]] += weighted
            tap += 1


def crop_resized(img: np.ndarray, box: np.ndarray, size: int, out: np.ndarray) -> None:
    """The integer 1-based box (x1, y1, x2, y2) of `img` resized into `out` (size, size, 3), float64."""
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    height, width = y2 - y1 + 1, x2 - x1 + 1
    if height * width > BANDED_PIXELS and min(height, width) >= size:
        _banded_area(img, x1, y1, x2, y2, size, out)
    else:
        cv2.resize(_padded_crop(img, x1, y1, x2, y2), (size, size), dst=out, interpolation=cv2.INTER_AREA)


def candidate_crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Float64 (N, size, size, 3) crops of integer 1-based boxes; parts outside the image stay zero."""
    out = np.empty((boxes.shape[0], size, size, 3), dtype=np.float64)
    for k, box in enumerate(boxes[:, :4].astype(np.int32)):
        crop_resized(img, box, size, out[k])
    return out
