"""Photos -> the faces found in them and their embeddings, batch by batch, with a status per photo.

Photos are decoded as the crop stage decodes them (`facenet_core.images.load_rgb`), detected and
cropped by `detect_faces` with the model's crop options, and their crops embedded by the model's
`Embedder`. A photo that cannot be read, or holds no face, is a result with that status, not an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facenet_core.detect.options import CropOptions
from facenet_core.fileio import is_utf8_name
from facenet_core.images import load_rgb
from facenet_core.inference.embedder import Embedder
from facenet_core.inference.faces import Face, Policy, detect_faces

OK = "ok"
NO_FACE = "no_face"
UNREADABLE = "unreadable"


@dataclass(frozen=True, eq=False)
class PhotoEmbeddings:
    """One photo's outcome: `status` "ok", "no_face" or "unreadable: <reason>"; its faces (those the
    policy keeps) and their embeddings, float32 len(faces) x D (zero rows unless ok)."""

    path: str | os.PathLike
    status: str
    faces: tuple[Face, ...]
    embeddings: np.ndarray


def _decode(path: str | os.PathLike, exif_transpose: bool) -> np.ndarray | str:
    """The photo's RGB pixels, or why it cannot be read."""
    if not is_utf8_name(os.fspath(path)):
        return f"{UNREADABLE}: its name is not valid UTF-8: rename it"
    try:
        return load_rgb(path, exif_transpose)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return f"{UNREADABLE}: {type(error).__name__}: {reason}"


def embed_photos(
    embedder: Embedder,
    paths: Sequence[str | os.PathLike],
    options: CropOptions,
    *,
    policy: Policy = "one",
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[PhotoEmbeddings]:
    """The outcome of each photo of `paths`, in order, `options.batch_size` photos at a time (decoded,
    detected in one detector call, embedded), so memory holds one batch of photos whatever their count.

    `options`: the crop options of the embedder's model (`contract.crop_options(...)`, device and
    batch size included). `on_batch(n)` is called after each batch of n photos (a progress bar).
    """
    dimension = embedder.contract.embedding_dimension
    for start in range(0, len(paths), options.batch_size):
        batch = paths[start : start + options.batch_size]
        decoded = [_decode(path, options.exif_transpose) for path in batch]
        found = iter(detect_faces([d for d in decoded if not isinstance(d, str)], options, policy=policy))
        faces = [() if isinstance(d, str) else next(found).faces for d in decoded]
        crops = [face.crop for photo in faces for face in photo]
        vectors = embedder.embed(np.stack(crops)) if crops else np.zeros((0, dimension), np.float32)
        offset = 0
        for path, pixels, kept in zip(batch, decoded, faces, strict=True):
            status = pixels if isinstance(pixels, str) else (OK if kept else NO_FACE)
            yield PhotoEmbeddings(path, status, kept, vectors[offset : offset + len(kept)])
            offset += len(kept)
        if on_batch is not None:
            on_batch(len(batch))
