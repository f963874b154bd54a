"""Greedy non-maximum suppression exactly as the reference MTCNN code does it.

Areas count the end pixel (+1), 'Min' divides the overlap by the smaller area, and boxes are
visited in the order of numpy's default (unstable) argsort, whose tie order decides which of two
equal-score boxes survives; torchvision.ops.nms differs on all three points.
"""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices of the kept rows of `boxes` (x1, y1, x2, y2, score, ...), best first."""
    if boxes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if method not in ("union", "min"):
        raise ValueError(f"nms method must be 'union' or 'min', got {method!r}")
    x1, y1, x2, y2, score = (boxes[:, k] for k in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)
    keep = []
    while order.size > 0:
        i = order[-1]
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)
