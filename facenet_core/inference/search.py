"""Exact nearest-identity search of query embeddings in an embeddings table, streamed.

The gallery is read `batch_rows` rows at a time (its row groups), so its size is bounded by the
disk, not the memory: per batch, the distances of every query to every face (one matrix product
on the CPU or GPU), the nearest face of each identity in the batch (a scatter-min), and the `top_k`
nearest identities merged into a running top-k per query. An identity is the row's `identity`, or
its source photo when it has none (a flat folder). The result is exact: an identity's distance is
that of its nearest face in the whole gallery.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from facenet_core.detect.options import CropOptions
from facenet_core.devices import resolve_device
from facenet_core.errors import UserError
from facenet_core.inference.embed_photos import NO_FACE, OK, embed_photos
from facenet_core.inference.faces import Face
from facenet_core.inference.gallery import gallery_info
from facenet_core.inference.runtime import OpenedModel

BATCH_ROWS = 32768
COLUMNS = ["source", "identity", "face_index", "embedding", "model", "status"]


@dataclass(frozen=True)
class Match:
    """A gallery identity near a query: its nearest face (source photo, face index) and distance."""

    label: str
    identity: str | None
    source: str
    face_index: int
    distance: float


def _scores(queries: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    """Q x B scores that order like the distances and cost one matrix product: euclidean, the squared
    distance |q|^2 + |g|^2 - 2 q.g; cosine, the distance 1 - cos(q, g) itself."""
    if metric == "euclidean":
        scores = torch.addmm(torch.linalg.vector_norm(gallery, dim=1).square_(), queries, gallery.T, alpha=-2)
        return scores.add_(torch.linalg.vector_norm(queries, dim=1, keepdim=True).square_()).clamp_min_(0)
    if metric == "cosine":
        norms = torch.linalg.vector_norm(queries, dim=1, keepdim=True) * torch.linalg.vector_norm(gallery, dim=1)
        return (queries @ gallery.T).div_(norms.clamp_min_(1e-12)).neg_().add_(1)
    raise ValueError(f"distance metric must be euclidean or cosine, got {metric!r}")


def _distances(scores: torch.Tensor, metric: str) -> torch.Tensor:
    """The distances of `_scores`."""
    return scores.sqrt() if metric == "euclidean" else scores


def pairwise_distances(queries: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    """Q x B distances: euclidean ||q - g|| or cosine 1 - cos(q, g), from one matrix product."""
    return _distances(_scores(queries, gallery, metric), metric)


def _batch_top_k(scores: torch.Tensor, labels: torch.Tensor, count: int, top_k: int):
    """Per query, the `top_k` nearest of the batch's `count` labels: (scores, labels, rows), Q x k."""
    queries, rows = scores.shape
    index = labels.expand(queries, rows)
    nearest = torch.full((queries, count), math.inf, device=scores.device)
    nearest.scatter_reduce_(1, index, scores, reduce="amin")
    is_nearest = scores == nearest.gather(1, index)
    positions = torch.arange(rows, device=scores.device).expand(queries, rows)
    row_of = torch.full((queries, count), -1, dtype=torch.long, device=scores.device)
    row_of.scatter_reduce_(1, index, torch.where(is_nearest, positions, -1), reduce="amax")
    values, chosen = nearest.topk(min(top_k, count), dim=1, largest=False)
    return values, chosen, row_of.gather(1, chosen)


def _embeddings(column: pa.FixedSizeListArray, dimension: int, device: torch.device) -> torch.Tensor:
    """The batch's embeddings, N x D float32 on `device`, read in place from Arrow's buffer (never written)."""
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dimension)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(values).to(device)


def gallery_batches(gallery: str | os.PathLike, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of an embeddings table, at most `batch_rows` at a time: whole row groups read
    together up to `batch_rows` rows (a larger row group is read alone and sliced), so memory holds
    one batch, never the table (pyarrow's `iter_batches` reads ahead far beyond its batch size)."""
    parquet = pq.ParquetFile(gallery)
    groups: list[int] = []
    rows = 0
    for index in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if groups and rows + size > batch_rows:
            yield from parquet.read_row_groups(groups, columns=COLUMNS).combine_chunks().to_batches(batch_rows)
            groups, rows = [], 0
        groups.append(index)
        rows += size
    if groups:
        yield from parquet.read_row_groups(groups, columns=COLUMNS).combine_chunks().to_batches(batch_rows)


def search_gallery(
    queries: np.ndarray,
    gallery: str | os.PathLike,
    *,
    model: str,
    metric: str = "euclidean",
    top_k: int = 5,
    batch_rows: int = BATCH_ROWS,
    device: str | torch.device = "cpu",
) -> list[list[Match]]:
    """The `top_k` nearest identities of each query (float32 Q x D) in the embeddings table
    `gallery`, nearest first. The table must hold embeddings of `model`, of dimension D: a
    UserError otherwise. Rows without an embedding (status other than ok) are skipped."""
    if top_k < 1:
        raise UserError(f"top_k {top_k}: give a number of identities >= 1")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    info = gallery_info(gallery)
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != info.dimension:
        raise UserError(
            f"gallery {gallery} holds {info.dimension}-d embeddings, the model makes {queries.shape[-1]}-d ones: "
            "search it with the model that made it"
        )
    _check_model(info.model, model, gallery)
    device = resolve_device(device)
    query_tensor = torch.from_numpy(queries).to(device)
    best: list[dict[str, Match]] = [{} for _ in queries]
    for batch in gallery_batches(gallery, batch_rows):
        usable = pc.equal(batch["status"], "ok")
        if not pc.all(usable).as_py():
            batch = batch.filter(usable)
        if batch.num_rows == 0:
            continue
        for other in pc.unique(batch["model"]).to_pylist():
            _check_model(other, model, gallery)
        labels = pc.coalesce(batch["identity"], batch["source"]).dictionary_encode()
        vectors = _embeddings(batch["embedding"], info.dimension, device)
        codes = torch.from_numpy(labels.indices.to_numpy(zero_copy_only=False).astype(np.int64)).to(device)
        scores, chosen, rows = _batch_top_k(
            _scores(query_tensor, vectors, metric), codes, len(labels.dictionary), top_k
        )
        nearest = (_distances(scores, metric), chosen, rows)
        _merge(best, batch, labels.dictionary, *(t.cpu().numpy() for t in nearest), top_k)
    return [sorted(found.values(), key=lambda match: match.distance) for found in best]


def _merge(best: list[dict[str, Match]], batch: pa.RecordBatch, names: pa.Array, values, chosen, rows, top_k: int):
    """Fold a batch's nearest identities into each query's running top-k (an identity keeps its nearest face)."""
    for query, found in enumerate(best):
        for distance, label, row in zip(values[query], chosen[query], rows[query], strict=True):
            name = names[int(label)].as_py()
            if name not in found or distance < found[name].distance:
                identity, source, face = (
                    batch[column][int(row)].as_py() for column in ("identity", "source", "face_index")
                )
                found[name] = Match(name, identity, source, face, float(distance))
        if len(found) > top_k:
            kept = sorted(found.values(), key=lambda match: match.distance)[:top_k]
            found.clear()
            found.update((match.label, match) for match in kept)


def _check_model(found: str | None, expected: str, gallery: str | os.PathLike) -> None:
    if found is not None and found != expected:
        raise UserError(
            f"gallery {gallery} was embedded by model {found}, not {expected}: search it with that model, or "
            "embed the gallery again with this one"
        )


@dataclass(frozen=True)
class QueryResult:
    """A query photo's nearest identities (none when it holds no face), and the face searched for."""

    path: str
    status: str
    face: Face | None
    matches: list[Match]


def search_photos(
    opened: OpenedModel,
    paths: list[str | os.PathLike],
    gallery: str | os.PathLike,
    options: CropOptions,
    *,
    top_k: int = 5,
    batch_rows: int = BATCH_ROWS,
    device: str | torch.device = "cpu",
) -> list[QueryResult]:
    """The face the crop stage keeps in each query photo, searched in `gallery`. A missing or
    unreadable photo is a UserError; a photo without a face is a result with status no_face."""
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"photo {os.fspath(path)} does not exist: check the path")
    info = gallery_info(gallery)
    _check_model(info.model, opened.identity, gallery)
    found = list(embed_photos(opened.embedder, paths, options))
    for result in found:
        if result.status not in (OK, NO_FACE):
            raise UserError(f"photo {os.fspath(result.path)} cannot be read ({result.status}): give an image file")
    faces = [result for result in found if result.status == OK]
    queries = np.stack([result.embeddings[0] for result in faces]) if faces else None
    matches = iter(
        search_gallery(
            queries,
            gallery,
            model=opened.identity,
            metric=opened.embedder.contract.distance_metric,
            top_k=top_k,
            batch_rows=batch_rows,
            device=device,
        )
        if faces
        else []
    )
    return [
        QueryResult(os.fspath(r.path), r.status, r.faces[0] if r.faces else None, next(matches) if r.faces else [])
        for r in found
    ]
