"""The one-face rule and crop box of the reference alignment script."""

from __future__ import annotations

import numpy as np


def choose_face(boxes: np.ndarray, height: int, width: int) -> int:
    """Index of the face to keep: largest box area minus twice the squared offset of its centre
    from the image centre (first one on ties)."""
    if boxes.shape[0] == 0:
        raise ValueError("choose_face needs at least one box")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    dx = (x1 + x2) / 2 - width / 2
    dy = (y1 + y2) / 2 - height / 2
    return int(np.argmax(area - (np.power(dx, 2.0) + np.power(dy, 2.0)) * 2.0))


def crop_box(box: np.ndarray, margin: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2) of `box` grown by margin/2 per side, clipped to the image, truncated."""
    bb = np.zeros(4, dtype=np.int32)
    bb[0] = np.maximum(box[0] - margin / 2, 0)
    bb[1] = np.maximum(box[1] - margin / 2, 0)
    bb[2] = np.minimum(box[2] + margin / 2, width)
    bb[3] = np.minimum(box[3] + margin / 2, height)
    return int(bb[0]), int(bb[1]), int(bb[2]), int(bb[3])
