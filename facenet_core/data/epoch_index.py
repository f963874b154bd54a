"""What the per-epoch index files share: triplets (data/triplets.py) and PK batches (data/pk_batches.py).

An epoch index file is an int32 `.npy` array of manifest rows with a `.json` sidecar naming the
manifest's fingerprint, the seed, the epoch, the sampling parameters, its format and its row count.
Both are written atomically; loading against another manifest or format is refused. The sampling
helpers here (the class index of a label array, Floyd's distinct sampler vectorised over blocks) are
the ones both generators draw with.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_core.fileio import atomic_path, atomic_write_json

COUNT_CHUNK = 1 << 22


class SamplingParams:
    """Mixin of the frozen dataclasses holding one sampling stage's config fields."""

    @classmethod
    def from_config(cls, config: Any) -> Any:
        """The config's values of these fields."""
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})  # type: ignore[attr-defined]


def class_index(labels: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(row order or None when already sorted, per-class start offsets, per-class counts)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    ordered = bool(np.all(labels[1:] >= labels[:-1]))
    if (labels[0] if ordered else labels.min()) < 0:
        raise ValueError("labels must be non-negative class indices")
    if ordered:  # a manifest's order: each class is one run of rows
        run_starts = np.concatenate([[0], np.flatnonzero(labels[1:] != labels[:-1]) + 1, [labels.size]])
        counts = np.zeros(int(labels[-1]) + 1, dtype=np.int64)
        counts[labels[run_starts[:-1]]] = np.diff(run_starts)
    else:
        counts = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        for start in range(0, labels.size, COUNT_CHUNK):  # bincount widens its input to int64: in slices
            counts += np.bincount(labels[start : start + COUNT_CHUNK], minlength=counts.size)
    starts = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=starts[1:])
    return (None if ordered else np.argsort(labels, kind="stable")), starts, counts


def sample_distinct(rng: np.random.Generator, classes: np.ndarray, blocks: int, k: int) -> np.ndarray:
    """`k` distinct entries of `classes` per block, (blocks, k) (Floyd's algorithm, vectorised over blocks)."""
    n = classes.size
    chosen = np.empty((blocks, k), dtype=np.int64)
    rows = np.arange(blocks)
    for step, top in enumerate(range(n - k, n)):
        draw = rng.integers(0, top + 1, size=blocks)
        taken = (chosen[:, :step] == draw[:, None]).any(axis=1)
        chosen[rows, step] = np.where(taken, top, draw)
    return classes[chosen]


@dataclass(frozen=True)
class IndexFormat:
    """One kind of epoch index file: its format tag, what it is called, the sidecar's count field,
    the row width when fixed, and the command that draws it again."""

    tag: str
    what: str
    count_key: str
    width: int | None
    command: str


def sidecar_path(path: str | os.PathLike) -> Path:
    """The `.json` beside an epoch index `.npy`."""
    return Path(path).with_suffix(".json")


def save_index(path: str | os.PathLike, rows: np.ndarray, meta: dict, kind: IndexFormat) -> Path:
    """Write the `.npy` then its `.json` sidecar (both atomically); `meta` needs manifest_fingerprint."""
    if "manifest_fingerprint" not in meta:
        raise ValueError(f"{kind.what} metadata must name the manifest_fingerprint they were drawn from")
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    if rows.ndim != 2 or (kind.width is not None and rows.shape[1] != kind.width):
        raise ValueError(f"{kind.what} must have shape (N, {kind.width or 'width'}), got {rows.shape}")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, rows, allow_pickle=False)
    atomic_write_json(sidecar_path(path), {**meta, "format": kind.tag, kind.count_key: len(rows)})
    return path


def epoch_meta(fingerprint: str, epoch: int, params: Any) -> dict[str, Any]:
    """The sidecar's fields of an epoch drawn with `params` (a frozen dataclass) from a manifest."""
    return {"manifest_fingerprint": fingerprint, "epoch": epoch, **asdict(params)}


def indexed_manifest(path: str | os.PathLike) -> str | None:
    """The fingerprint of the manifest whose rows the index file at `path` points into (its sidecar's),
    None without a sidecar. The rows alone do not say it: two manifests with the same identities and
    image counts (another crop of the same dataset) give byte-identical index files."""
    side = sidecar_path(path)
    return json.loads(side.read_text()).get("manifest_fingerprint") if side.is_file() else None


def read_sidecar(path: str | os.PathLike, manifest_fingerprint: str, kind: IndexFormat) -> dict[str, Any]:
    """The sidecar of the index file at `path`, checked to be of this kind and drawn from this manifest."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind.what} file {path} not found")
    if not side.is_file():
        raise ValueError(f"{kind.what} file {path} has no {side.name} sidecar; regenerate it with {kind.command}")
    meta = json.loads(side.read_text())
    if meta.get("format") != kind.tag:
        raise ValueError(
            f"{path} holds {meta.get('format')!r}, not {kind.what} ({kind.tag!r}); draw them with {kind.command}"
        )
    if meta.get("manifest_fingerprint") != manifest_fingerprint:
        raise ValueError(
            f"{kind.what} {path} were drawn from manifest {meta.get('manifest_fingerprint')!r}, not from the "
            f"manifest in use ({manifest_fingerprint!r}); regenerate them for this manifest"
        )
    return meta


def load_index(path: str | os.PathLike, manifest_fingerprint: str, kind: IndexFormat) -> np.ndarray:
    """An index file saved by save_index, refused unless of this kind and drawn from this manifest."""
    meta = read_sidecar(path, manifest_fingerprint, kind)
    rows = np.load(path, allow_pickle=False)
    if rows.dtype != np.int32 or rows.ndim != 2 or (kind.width is not None and rows.shape[1] != kind.width):
        raise ValueError(
            f"{kind.what} {path} must be an int32 (N, {kind.width or 'width'}) array, got {rows.dtype} {rows.shape}"
        )
    if len(rows) != meta.get(kind.count_key, len(rows)):
        raise ValueError(
            f"{kind.what} {path} hold {len(rows)} rows but {sidecar_path(path).name} says {meta[kind.count_key]}"
        )
    return rows
