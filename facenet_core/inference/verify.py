"""Two photos -> the distance between their faces and whether they are the same person.

The face of each photo is the one the crop stage keeps; the distance is the model's
`distance_metric` between the two unit-length embeddings (`facenet_core.evaluate.embed.
pair_distances`, the function the model was evaluated with), compared with a threshold the model's
contract names (`ModelContract.threshold`): below it, the same person.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from facenet_core.detect.options import CropOptions
from facenet_core.errors import UserError
from facenet_core.evaluate.embed import pair_distances
from facenet_core.inference.embed_photos import NO_FACE, OK, embed_photos
from facenet_core.inference.embedder import Embedder
from facenet_core.inference.faces import Face


@dataclass(frozen=True)
class Verification:
    """The outcome of comparing two photos."""

    distance: float
    metric: str
    threshold: float
    threshold_source: str
    same: bool
    faces: tuple[Face, Face]


def photo_faces(
    embedder: Embedder, paths: list[str | os.PathLike], options: CropOptions
) -> list[tuple[Face, np.ndarray]]:
    """The kept face of each photo and its embedding; a UserError naming a photo that cannot be read
    or holds no face."""
    found = []
    for result in embed_photos(embedder, paths, options):
        if result.status == NO_FACE:
            raise UserError(f"photo {os.fspath(result.path)}: no face found: give a photo with a visible face")
        if result.status != OK:
            raise UserError(f"photo {os.fspath(result.path)} cannot be read ({result.status}): give an image file")
        found.append((result.faces[0], result.embeddings[0]))
    return found


def verify_photos(
    embedder: Embedder,
    photo_a: str | os.PathLike,
    photo_b: str | os.PathLike,
    options: CropOptions,
    threshold: str = "best",
) -> Verification:
    """Compare the faces of two photos with `threshold` ("best", "far1e-3" or a distance)."""
    for photo in (photo_a, photo_b):
        if not os.path.isfile(photo):
            raise UserError(f"photo {os.fspath(photo)} does not exist: check the path")
    contract = embedder.contract
    limit, source = contract.threshold(threshold)
    (face_a, vector_a), (face_b, vector_b) = photo_faces(embedder, [photo_a, photo_b], options)
    pair = np.stack([vector_a, vector_b])
    distance = float(pair_distances(pair, np.array([0]), np.array([1]), contract.distance_metric)[0])
    return Verification(distance, contract.distance_metric, limit, source, distance < limit, (face_a, face_b))
