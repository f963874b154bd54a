"""Five-point face alignment: MTCNN's landmarks mapped onto the ArcFace template by a similarity.

The ArcFace template (insightface's `arcface_dst`) places the eyes, the nose tip and the mouth
corners of a 112 x 112 face; scaled by S / 112 it frames an S x S crop. The least-squares
similarity (Umeyama 1991: rotation, uniform scale, translation, never a reflection) taking the
detected points onto it is applied with OpenCV's bilinear `warpAffine`, pixels from outside the
photo black, as insightface's `norm_crop` makes its aligned packs. Coordinates are pixel indices
(the centre of pixel (row i, column j) is the point (j, i)), as the detector reports landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

TEMPLATE_SIZE = 112
# Left eye, right eye, nose tip, left and right mouth corner ("left": smaller x, the image's left).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def template(size: int) -> np.ndarray:
    """The (5, 2) ArcFace template points for a size x size crop: the 112-px points * size / 112."""
    if size < 1:
        raise ValueError(f"aligned crop size must be >= 1, got {size}")
    return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)


def landmark_points(points: np.ndarray) -> np.ndarray:
    """The (5, 2) (x, y) points of the detector's 10 landmark values (x1..x5 then y1..y5), float64."""
    flat = np.asarray(points, dtype=np.float64).reshape(10)
    return np.stack([flat[:5], flat[5:]], axis=1)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix [sR | t] minimising sum |s R p + t - q|^2 over the point pairs (p, q) of
    `source` and `target` ((N, 2) each, N >= 2): Umeyama's closed form, R a rotation (det +1)."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or source.shape[0] < 2:
        raise ValueError(
            f"similarity_transform needs two (N, 2) point sets, N >= 2; got {source.shape}, {target.shape}"
        )
    mean_source, mean_target = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - mean_source, target - mean_target
    variance = (centred_source**2).sum() / len(source)
    if variance <= 0:
        raise ValueError("similarity_transform: the source points all coincide")
    u, singular, vt = np.linalg.svd(centred_target.T @ centred_source / len(source))
    signs = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = (singular * signs).sum() / variance
    return np.hstack([scale * rotation, (mean_target - scale * rotation @ mean_source)[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a 2 x 3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(img: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size uint8 image whose pixel p is `img` at matrix^-1(p), bilinear; black outside `img`."""
    return cv2.warpAffine(
        img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def alignment_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The similarity taking the (5, 2) landmarks onto the ArcFace template of a size x size crop."""
    return similarity_transform(landmarks, template(size))


def aligned_face(img: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """The size x size x 3 uint8 face of `img` (H x W x 3 RGB) whose (5, 2) landmarks land on the template."""
    return warp(img, alignment_matrix(landmarks, size), size)
