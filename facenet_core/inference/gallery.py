"""Embeddings tables (`facenet embed`'s Parquet files, the galleries `facenet search` reads): their
schema, an atomic streaming writer, and what a table says about the model that made it.

One row per face found (and one per photo without a face or unreadable, with its status): source,
identity, face_index, box (x1, y1, x2, y2), score, embedding (fixed-size list of float32), model
(the identity of the model, `facenet_core.inference.runtime`), status. The row of a photo without
a face has a null face_index and score, and zeros for box and embedding (never a unit vector): not
nulls, which Arrow's Parquet reader cannot read back in a fixed-size list (apache/arrow#35692).
The schema's metadata repeats the model, the embedding dimension and the distance metric.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facenet_core.detect.options import CropOptions
from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path, printable_name
from facenet_core.inference.embed_photos import NO_FACE, OK, PhotoEmbeddings, embed_photos
from facenet_core.inference.faces import Policy
from facenet_core.inference.photos import PhotoInput
from facenet_core.inference.runtime import OpenedModel

MODEL_KEY = b"facenet_model"
DIMENSION_KEY = b"embedding_dimension"
METRIC_KEY = b"distance_metric"
DICTIONARY_COLUMNS = ["source", "identity", "model", "status"]
ROW_GROUP_ROWS = 16384  # 32 MiB of 512-d embeddings: a search streams the table one row group at a time


def embeddings_schema(dimension: int, model: str, metric: str) -> pa.Schema:
    """The schema of an embeddings table of `dimension`-d embeddings made by `model`."""
    fields = [
        pa.field("source", pa.string(), nullable=False),
        pa.field("identity", pa.string()),
        pa.field("face_index", pa.int32()),
        pa.field("box", pa.list_(pa.int32(), 4), nullable=False),
        pa.field("score", pa.float32()),
        pa.field("embedding", pa.list_(pa.float32(), dimension), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
    ]
    metadata = {MODEL_KEY: model.encode(), DIMENSION_KEY: str(dimension).encode(), METRIC_KEY: metric.encode()}
    return pa.schema(fields, metadata=metadata)


def photo_rows(result: PhotoEmbeddings, identity: str | None) -> list[dict]:
    """The rows of one photo's outcome: one per face, or one with no face when there is none."""
    source = printable_name(os.fspath(result.path))
    identity = None if identity is None else printable_name(identity)
    if not result.faces:
        return [{"source": source, "identity": identity, "status": result.status}]
    return [
        {
            "source": source,
            "identity": identity,
            "face_index": index,
            "box": list(face.box),
            "score": face.score,
            "embedding": result.embeddings[index],
            "status": result.status,
        }
        for index, face in enumerate(result.faces)
    ]


def _fixed_size_lists(items: list, size: int, dtype: type) -> pa.FixedSizeListArray:
    """Lists of `size` values as one fixed-size list array, None as `size` zeros (see the module docstring)."""
    valid = np.array([item is not None for item in items], dtype=bool)
    values = np.zeros((len(items), size), dtype)
    if valid.any():
        values[valid] = np.stack([np.asarray(item, dtype) for item in items if item is not None])
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), size)


class EmbeddingsWriter:
    """Writes an embeddings table to `path` atomically: rows are streamed to a temporary file in row
    groups of `row_group_rows`, renamed into place on a clean exit, removed on an error."""

    def __init__(
        self, path: str | os.PathLike, *, dimension: int, model: str, metric: str, row_group_rows: int = ROW_GROUP_ROWS
    ) -> None:
        self.path = Path(path)
        self.schema = embeddings_schema(dimension, model, metric)
        self.model = model
        self.dimension = dimension
        self.row_group_rows = row_group_rows
        self.rows_written = 0
        self._pending: list[dict] = []

    def __enter__(self) -> EmbeddingsWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        # Dictionary pages for the repetitive strings only: float embeddings never gain from one.
        self._writer = pq.ParquetWriter(self._tmp, self.schema, use_dictionary=DICTIONARY_COLUMNS)
        return self

    def write(self, rows: Iterable[dict]) -> None:
        """Add rows (the keys of `photo_rows`; `embedding` a float32 array or None)."""
        self._pending.extend(rows)
        while len(self._pending) >= self.row_group_rows:
            self._flush(self._pending[: self.row_group_rows])
            self._pending = self._pending[self.row_group_rows :]

    def write_arrays(self, columns: dict[str, pa.Array | list]) -> None:
        """Add a ready batch of columns (all the schema's but `model`, which is this writer's)."""
        count = len(columns["source"])
        arrays = {**columns, "model": pa.array([self.model] * count, pa.string())}
        self._writer.write_table(pa.table(arrays, schema=self.schema), row_group_size=self.row_group_rows)
        self.rows_written += count

    def _flush(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.write_arrays(
            {
                "source": [row["source"] for row in rows],
                "identity": [row.get("identity") for row in rows],
                "face_index": [row.get("face_index") for row in rows],
                "box": _fixed_size_lists([row.get("box") for row in rows], 4, np.int32),
                "score": [row.get("score") for row in rows],
                "embedding": _fixed_size_lists([row.get("embedding") for row in rows], self.dimension, np.float32),
                "status": [row["status"] for row in rows],
            }
        )

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if error is None:
                self._flush(self._pending)
            self._writer.close()
        finally:
            self._atomic.__exit__(kind, error, traceback)


def write_embeddings(
    opened: OpenedModel,
    photos: list[PhotoInput],
    out: str | os.PathLike,
    options: CropOptions,
    *,
    policy: Policy = "one",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Embed the faces of `photos` (the one the crop stage keeps, or all with `policy` "all") into an
    embeddings table at `out`, written atomically; returns the counts of photos by status and of rows."""
    contract = opened.embedder.contract
    identities = {photo.path: photo.identity for photo in photos}
    counts = {"photos": len(photos), OK: 0, NO_FACE: 0, "unreadable": 0, "rows": 0}
    results = embed_photos(opened.embedder, list(identities), options, policy=policy, on_batch=on_batch)
    with EmbeddingsWriter(
        out, dimension=contract.embedding_dimension, model=opened.identity, metric=contract.distance_metric
    ) as writer:
        for result in results:
            rows = photo_rows(result, identities[result.path])
            writer.write(rows)
            counts[result.status if result.status in (OK, NO_FACE) else "unreadable"] += 1
            counts["rows"] += len(rows)
    return counts


@dataclass(frozen=True)
class GalleryInfo:
    """What an embeddings table says about itself: the model and embedding size (from its schema)
    and its number of rows."""

    model: str | None
    dimension: int
    rows: int


def gallery_info(path: str | os.PathLike) -> GalleryInfo:
    """The model and dimension of the embeddings table at `path`; a UserError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"gallery {path} does not exist: make it with facenet embed ... --out {path.name}")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise UserError(f"gallery {path} is not a Parquet file ({error}): give a table facenet embed wrote") from None
    schema = parquet.schema_arrow
    names = set(schema.names)
    needed = {"source", "identity", "face_index", "embedding", "model", "status"}
    embedding = schema.field("embedding").type if "embedding" in names else None
    if not needed <= names or not isinstance(embedding, pa.FixedSizeListType):
        raise UserError(
            f"gallery {path} is not an embeddings table (columns {', '.join(sorted(needed - names)) or 'embedding'} "
            "missing or of another type): make it with facenet embed"
        )
    metadata = schema.metadata or {}
    model = metadata.get(MODEL_KEY)
    return GalleryInfo(model.decode() if model else None, embedding.list_size, parquet.metadata.num_rows)
