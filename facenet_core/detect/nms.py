"""Greedy non-maximum suppression exactly as the reference MTCNN code does it.

Areas count the end pixel (+1), 'Min' divides the overlap by the smaller area, and boxes are
visited in the order of numpy's default (unstable) argsort, whose tie order decides which of two
equal-score boxes survives; torchvision.ops.nms differs on all three points.
"""

from __future__ import annotations

import numpy as np

BLOCK = 256
# Overlaps computed at once at most (rows x boxes, float64): the block shrinks for very many boxes,
# e.g. the P-Net cells of a 48 MP photo's largest pyramid level, so memory stays bounded.
BLOCK_ELEMENTS = 1 << 22


def _suppression_masks(
    corners: tuple[np.ndarray, ...],
    area: np.ndarray,
    rows: np.ndarray | slice,
    start: int,
    threshold: float,
    method: str,
) -> list[int]:
    """Per row r, a bitmask over boxes start.. (bit c set: box `rows[r]` suppresses box `start + c`).

    The overlaps use the reference's arithmetic; bitmasks make the greedy pass plain integer work.
    """
    x1, y1, x2, y2 = corners
    w = np.minimum.outer(x2[rows], x2[start:]) - np.maximum.outer(x1[rows], x1[start:]) + 1
    h = np.minimum.outer(y2[rows], y2[start:]) - np.maximum.outer(y1[rows], y1[start:]) + 1
    inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    if method == "min":
        overlap = inter / np.minimum.outer(area[rows], area[start:])
    else:
        overlap = inter / (np.add.outer(area[rows], area[start:]) - inter)
    # "not <=" rather than ">": the reference keeps only boxes with overlap <= threshold, so a NaN
    # overlap (a degenerate box) suppresses, as there.
    packed = np.packbits(~(overlap <= threshold), axis=1, bitorder="little")
    width = packed.shape[1]
    data = packed.tobytes()
    return [int.from_bytes(data[r : r + width], "little") for r in range(0, len(data), width)]


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
    corners = tuple(boxes[order, :4].T)
    x1, y1, x2, y2 = corners
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    suppressed = 0  # bit i: the i-th box in visiting order is suppressed
    keep = []
    step = min(BLOCK, max(BLOCK_ELEMENTS // order.size, 1))
    for start in range(0, order.size, step):
        block = range(start, min(start + step, order.size))
        if not suppressed >> start:
            rows, index = block, slice(block.start, block.stop)
        else:
            rows = [i for i in block if not suppressed >> i & 1]
            index = np.asarray(rows)
        if not rows:
            continue
        masks = _suppression_masks(corners, area, index, start, threshold, method)
        for i, mask in zip(rows, masks, strict=True):
            if not suppressed >> i & 1:
                keep.append(i)
                suppressed |= mask << start
    return order[np.asarray(keep, dtype=np.int64)]
