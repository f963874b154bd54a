"""Greedy non-maximum suppression exactly as the reference MTCNN code does it.

Areas count the end pixel (+1), 'Min' divides the overlap by the smaller area, and boxes are
visited in the order of numpy's default (unstable) argsort, whose tie order decides which of two
equal-score boxes survives; torchvision.ops.nms differs on all three points.
"""

from __future__ import annotations

import numpy as np

BLOCK = 256


def _suppressed(
    corners: tuple[np.ndarray, ...], area: np.ndarray, rows: np.ndarray, start: int, threshold: float, method: str
) -> np.ndarray:
    """(len(rows), n - start) mask: box `rows[r]` suppresses box `start + c` (same arithmetic as the reference)."""
    x1, y1, x2, y2 = corners
    w = np.maximum(0.0, np.minimum(x2[rows, None], x2[start:]) - np.maximum(x1[rows, None], x1[start:]) + 1)
    h = np.maximum(0.0, np.minimum(y2[rows, None], y2[start:]) - np.maximum(y1[rows, None], y1[start:]) + 1)
    inter = w * h
    if method == "min":
        overlap = inter / np.minimum(area[rows, None], area[start:])
    else:
        overlap = inter / (area[rows, None] + area[start:] - inter)
    return overlap > threshold


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices of the kept rows of `boxes` (x1, y1, x2, y2, score, ...), best first.

    Overlaps are computed for blocks of still-unsuppressed boxes at once rather than one kept box at
    a time; the visiting order and every overlap value are the reference's.
    """
    if boxes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if method not in ("union", "min"):
        raise ValueError(f"nms method must be 'union' or 'min', got {method!r}")
    order = np.argsort(boxes[:, 4])[::-1]
    corners = tuple(boxes[order, k] for k in range(4))
    x1, y1, x2, y2 = corners
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    alive = np.ones(order.size, dtype=bool)
    keep = []
    for start in range(0, order.size, BLOCK):
        rows = start + np.flatnonzero(alive[start : start + BLOCK])
        if rows.size == 0:
            continue
        suppressed = _suppressed(corners, area, rows, start, threshold, method)
        for row, pos in enumerate(rows):
            if alive[pos]:
                keep.append(pos)
                alive[start:] &= ~suppressed[row]
    return order[np.asarray(keep, dtype=np.int64)]
