"""Per-epoch triplets: the seed's sampling rules, vectorised and deterministic from (seed, epoch).

Each block of `batch_size` consecutive triplets draws from `num_human_identities_per_batch`
identities sampled without replacement; the positive identity is uniform among the sampled ones
holding at least two images, the negative identity uniform among the other sampled identities;
anchor and positive are a uniform ordered pair of distinct images, the negative a uniform image.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_core.fileio import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from facenet_core.data.manifest import Manifest

TRIPLETS_FORMAT = "facenet-triplets-1"
# Bump when the triplets drawn for the same (manifest, seed, epoch) would differ.
STAGE_VERSION = 1


@dataclass(frozen=True)
class TripletParams:
    """What an epoch's triplets depend on besides the manifest and the epoch (the config's fields of
    the triplets stage, facenet_core/config/stages.py)."""

    seed: int
    iterations_per_epoch: int
    batch_size: int
    num_human_identities_per_batch: int

    @classmethod
    def from_config(cls, config: Any) -> TripletParams:
        """The config's values of these fields."""
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


def _class_index(labels: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(row order or None when already sorted, per-class start offsets, per-class counts)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    order = None if bool(np.all(labels[1:] >= labels[:-1])) else np.argsort(labels, kind="stable")
    counts = np.bincount(labels).astype(np.int64)
    starts = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=starts[1:])
    return order, starts, counts


def _sample_identities(rng: np.random.Generator, classes: np.ndarray, blocks: int, k: int) -> np.ndarray:
    """`k` distinct entries of `classes` per block (Floyd's algorithm, vectorised over blocks)."""
    n = classes.size
    chosen = np.empty((blocks, k), dtype=np.int64)
    rows = np.arange(blocks)
    for step, top in enumerate(range(n - k, n)):
        draw = rng.integers(0, top + 1, size=blocks)
        taken = (chosen[:, :step] == draw[:, None]).any(axis=1)
        chosen[rows, step] = np.where(taken, top, draw)
    return classes[chosen]


def _sample_blocks(rng: np.random.Generator, counts: np.ndarray, blocks: int, k: int) -> np.ndarray:
    """Identities per block, with blocks holding no identity of >= 2 images resampled."""
    classes = np.flatnonzero(counts > 0)
    chosen = _sample_identities(rng, classes, blocks, k)
    while True:
        bad = np.flatnonzero(~(counts[chosen] >= 2).any(axis=1))
        if bad.size == 0:
            return chosen
        chosen[bad] = _sample_identities(rng, classes, bad.size, k)


def generate_triplets(
    labels: np.ndarray,
    *,
    seed: int,
    epoch: int,
    iterations_per_epoch: int,
    batch_size: int,
    num_human_identities_per_batch: int,
) -> np.ndarray:
    """int32 (iterations_per_epoch * batch_size, 3) rows (anchor, positive, negative) of `labels`."""
    for name, value in (
        ("iterations_per_epoch", iterations_per_epoch),
        ("batch_size", batch_size),
        ("num_human_identities_per_batch", num_human_identities_per_batch),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    k = num_human_identities_per_batch
    if k < 2:
        raise ValueError(f"num_human_identities_per_batch must be at least 2 (a negative identity), got {k}")
    order, starts, counts = _class_index(labels)
    present = int((counts > 0).sum())
    if present < k:
        raise ValueError(
            f"num_human_identities_per_batch={k} exceeds the {present} identities in the manifest; lower it"
        )
    if not (counts >= 2).any():
        raise ValueError("no identity has two images: a triplet needs an anchor and a distinct positive")
    rng = np.random.default_rng([int(seed), int(epoch)])
    blocks, b = iterations_per_epoch, batch_size
    chosen = _sample_blocks(rng, counts, blocks, k)

    # Eligible (>= 2 images) identities first in each block, so a uniform index picks among them.
    eligible = counts[chosen] >= 2
    ranked = np.take_along_axis(chosen, np.argsort(~eligible, axis=1, kind="stable"), axis=1)
    num_eligible = eligible.sum(axis=1)
    pos_slot = rng.integers(0, num_eligible[:, None], size=(blocks, b))
    neg_slot = rng.integers(0, k - 1, size=(blocks, b))
    neg_slot += neg_slot >= pos_slot
    pos_class = np.take_along_axis(ranked, pos_slot, axis=1).ravel()
    neg_class = np.take_along_axis(ranked, neg_slot, axis=1).ravel()
    del pos_slot, neg_slot

    pos_count, neg_count = counts[pos_class], counts[neg_class]
    anchor = rng.integers(0, pos_count)
    positive = rng.integers(0, pos_count - 1)
    positive += positive >= anchor
    negative = rng.integers(0, neg_count)
    triplets = np.empty((blocks * b, 3), dtype=np.int64)
    triplets[:, 0] = starts[pos_class] + anchor
    triplets[:, 1] = starts[pos_class] + positive
    triplets[:, 2] = starts[neg_class] + negative
    if order is not None:
        triplets = order[triplets]
    return triplets.astype(np.int32)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The `.json` beside a triplets `.npy`."""
    return Path(path).with_suffix(".json")


def save_triplets(path: str | os.PathLike, triplets: np.ndarray, meta: dict) -> Path:
    """Write the `.npy` then its `.json` sidecar (both atomically); `meta` needs manifest_fingerprint."""
    if "manifest_fingerprint" not in meta:
        raise ValueError("triplets metadata must name the manifest_fingerprint they were drawn from")
    triplets = np.ascontiguousarray(triplets, dtype=np.int32)
    if triplets.ndim != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets must have shape (T, 3), got {triplets.shape}")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, triplets, allow_pickle=False)
    atomic_write_json(sidecar_path(path), {**meta, "format": TRIPLETS_FORMAT, "num_triplets": len(triplets)})
    return path


def draw_and_save(manifest: Manifest, epoch: int, params: TripletParams, path: str | os.PathLike) -> int:
    """Draw epoch `epoch`'s triplets of `manifest` and save them at `path` with their sidecar (the
    manifest's fingerprint, the epoch and `params`); returns how many were drawn."""
    triplets = generate_triplets(manifest.labels, epoch=epoch, **asdict(params))
    meta = {"manifest_fingerprint": manifest.fingerprint, "epoch": epoch, **asdict(params)}
    save_triplets(path, triplets, meta)
    return len(triplets)


def load_triplets(path: str | os.PathLike, manifest_fingerprint: str) -> np.ndarray:
    """Triplets saved by save_triplets, refused unless drawn from the manifest with this fingerprint."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"triplets file {path} not found")
    if not side.is_file():
        raise ValueError(f"triplets file {path} has no {side.name} sidecar; regenerate it with `facenet triplets`")
    meta = json.loads(side.read_text())
    if meta.get("manifest_fingerprint") != manifest_fingerprint:
        raise ValueError(
            f"triplets {path} were drawn from manifest {meta.get('manifest_fingerprint')!r}, not from the "
            f"manifest in use ({manifest_fingerprint!r}); regenerate them for this manifest"
        )
    triplets = np.load(path, allow_pickle=False)
    if triplets.dtype != np.int32 or triplets.ndim != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets {path} must be an int32 (T, 3) array, got {triplets.dtype} {triplets.shape}")
    if len(triplets) != meta.get("num_triplets", len(triplets)):
        raise ValueError(f"triplets {path} hold {len(triplets)} rows but {side.name} says {meta['num_triplets']}")
    return triplets
