"""Per-epoch triplets: the seed's sampling rules, vectorised and deterministic from (seed, epoch).

Each block of `batch_size` consecutive triplets draws from `num_human_identities_per_batch`
identities sampled without replacement; the positive identity is uniform among the sampled ones
holding at least two images, the negative identity uniform among the other sampled identities;
anchor and positive are a uniform ordered pair of distinct images, the negative a uniform image.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facenet_core.data.epoch_index import (
    IndexFormat,
    SamplingParams,
    class_index,
    epoch_meta,
    load_index,
    sample_distinct,
    save_index,
    sidecar_path,
)

if TYPE_CHECKING:
    from facenet_core.data.manifest import ManifestLabels

TRIPLETS = IndexFormat(
    tag="facenet-triplets-1", what="triplets", count_key="num_triplets", width=3, command="`facenet triplets`"
)
# Bump when the triplets drawn for the same (manifest, seed, epoch) would differ.
STAGE_VERSION = 1
__all__ = [
    "STAGE_VERSION",
    "TRIPLETS",
    "TripletParams",
    "draw_and_save",
    "generate_triplets",
    "load_triplets",
    "save_triplets",
    "sidecar_path",
]


@dataclass(frozen=True)
class TripletParams(SamplingParams):
    """What an epoch's triplets depend on besides the manifest and the epoch (the config's fields of
    the triplets stage, facenet_core/config/stages.py)."""

    seed: int
    iterations_per_epoch: int
    batch_size: int
    num_human_identities_per_batch: int


def _sample_blocks(rng: np.random.Generator, counts: np.ndarray, blocks: int, k: int) -> np.ndarray:
    """Identities per block, with blocks holding no identity of >= 2 images resampled."""
    classes = np.flatnonzero(counts > 0)
    chosen = sample_distinct(rng, classes, blocks, k)
    while True:
        bad = np.flatnonzero(~(counts[chosen] >= 2).any(axis=1))
        if bad.size == 0:
            return chosen
        chosen[bad] = sample_distinct(rng, classes, bad.size, k)


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
    order, starts, counts = class_index(labels)
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

    # Drawn in the order of STAGE_VERSION 1 (anchor, positive, negative: the same bytes), each column
    # dropped once used: the peak holds about five epoch-long columns.
    pos_count = counts[pos_class]
    anchor = rng.integers(0, pos_count)
    pos_count -= 1
    positive = rng.integers(0, pos_count)
    del pos_count
    positive += positive >= anchor
    triplets = np.empty((blocks * b, 3), dtype=np.int32)
    pos_start = starts[pos_class]
    del pos_class
    anchor += pos_start
    triplets[:, 0] = anchor
    del anchor
    positive += pos_start
    triplets[:, 1] = positive
    del positive, pos_start
    negative = rng.integers(0, counts[neg_class])
    negative += starts[neg_class]
    triplets[:, 2] = negative
    if order is not None:
        triplets = order[triplets]
    return triplets.astype(np.int32, copy=False)


def save_triplets(path: str | os.PathLike, triplets: np.ndarray, meta: dict) -> Path:
    """Write the `.npy` then its `.json` sidecar (both atomically); `meta` needs manifest_fingerprint."""
    return save_index(path, triplets, meta, TRIPLETS)


def draw_and_save(manifest: ManifestLabels, epoch: int, params: TripletParams, path: str | os.PathLike) -> int:
    """Draw epoch `epoch`'s triplets of `manifest` (its labels: read_manifest_labels) and save them at
    `path` with their sidecar (the manifest's fingerprint, the epoch and `params`); returns how many."""
    triplets = generate_triplets(manifest.labels, epoch=epoch, **asdict(params))
    save_triplets(path, triplets, epoch_meta(manifest.fingerprint, epoch, params))
    return len(triplets)


def load_triplets(path: str | os.PathLike, manifest_fingerprint: str) -> np.ndarray:
    """Triplets saved by save_triplets, refused unless drawn from the manifest with this fingerprint."""
    return load_index(path, manifest_fingerprint, TRIPLETS)
