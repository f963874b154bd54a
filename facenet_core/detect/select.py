"""The per-image rules of the reference alignment script: which images are searched, which face is
kept, its crop box and its crop (the box resized, or the face aligned on its landmarks). The crop
stage and `facenet_core.inference.faces` both apply them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from facenet_core.detect.align import aligned_face, landmark_points
from facenet_core.detect.options import CropMethod


def too_small(height: int, width: int, min_face_size: int) -> bool:
    """Whether an image is smaller than the minimum face size on a side: it is not searched."""
    return min(height, width) < min_face_size


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


def is_empty(box: tuple[int, int, int, int]) -> bool:
    """Whether a crop box holds no pixel (a face box outside the image once clipped)."""
    return box[2] <= box[0] or box[3] <= box[1]


def resized_crop(img: np.ndarray, box: tuple[int, int, int, int], size: int) -> Image.Image:
    """The pixels of the (non-empty) crop box of `img` resized bilinearly to size x size."""
    x1, y1, x2, y2 = box
    return Image.fromarray(img[y1:y2, x1:x2]).resize((size, size), Image.BILINEAR)


def face_crop(
    img: np.ndarray, box: tuple[int, int, int, int], points: np.ndarray, size: int, method: CropMethod
) -> Image.Image:
    """The size x size crop of a kept face: its (non-empty) crop box resized ("mtcnn"), or the face
    warped so its 10 landmark values (x1..x5, y1..y5) land on the ArcFace template ("aligned")."""
    if method == "aligned":
        return Image.fromarray(aligned_face(img, landmark_points(points), size))
    return resized_crop(img, box, size)
