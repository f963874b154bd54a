"""Box arithmetic of the reference MTCNN pipeline, in float64 numpy like the original.

Rows are (x1, y1, x2, y2, score[, regression...]) in 1-based pixel coordinates.
"""

from __future__ import annotations

import numpy as np

STRIDE = 2
CELL = 12


def proposals(prob: np.ndarray, reg: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net cells with probability >= threshold as (N, 9) rows: box, score, 4 regression values.

    Cells are listed in column-major order. When a level yields exactly one cell its regression is
    read from the horizontally mirrored cell, as the reference does.
    """
    cols, rows = np.nonzero(prob.T >= threshold)
    score = prob[rows, cols]
    reg_cols = prob.shape[1] - 1 - cols if cols.size == 1 else cols
    regression = reg[:, rows, reg_cols].T
    corner = np.stack([cols, rows], axis=1)
    top_left = np.fix((STRIDE * corner + 1) / scale)
    bottom_right = np.fix((STRIDE * corner + CELL) / scale)
    return np.hstack([top_left, bottom_right, score[:, None], regression]).astype(np.float64)


def regress_proposals(boxes: np.ndarray) -> np.ndarray:
    """P-Net regression (offsets scaled by x2 - x1, without +1) -> (N, 5) boxes with score."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack(
        [
            boxes[:, 0] + boxes[:, 5] * w,
            boxes[:, 1] + boxes[:, 6] * h,
            boxes[:, 2] + boxes[:, 7] * w,
            boxes[:, 3] + boxes[:, 8] * h,
            boxes[:, 4],
        ],
        axis=1,
    )


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """R-/O-Net regression (offsets scaled by x2 - x1 + 1); returns a new array."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = the longer side); returns a new array."""
    out = boxes.copy()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def truncate(boxes: np.ndarray) -> np.ndarray:
    """Coordinates truncated toward zero (np.fix), the integer boxes the next stage crops."""
    out = boxes.copy()
    out[:, 0:4] = np.fix(out[:, 0:4])
    return out


def landmarks(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """O-Net's relative landmarks (N, 10: x1..x5, y1..y5) in image coordinates of `boxes`."""
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    xs = w * points[:, 0:5] + boxes[:, 0:1] - 1
    ys = h * points[:, 5:10] + boxes[:, 1:2] - 1
    return np.hstack([xs, ys])
