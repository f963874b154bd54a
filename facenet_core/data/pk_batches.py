"""Per-epoch P x K batches: P identities with K images each per step, deterministic from (seed, epoch).

Row b of an epoch's int32 (iterations_per_epoch, P*K) array is step b's batch of manifest rows,
identity-major: the K images of one identity are contiguous. Only identities holding at least two
images are eligible (every image needs a positive); the P identities of a batch are distinct and
uniform among the eligible ones. An identity with at least K images gives K distinct images, a
uniform subset; one with fewer (2 <= n < K) gives all n of its images, then the K - n others drawn
with replacement from them. Everything is drawn vectorised over the whole epoch (loops only over
the P and K slots).
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
    read_sidecar,
    sample_distinct,
    save_index,
)
from facenet_core.errors import UserError

if TYPE_CHECKING:
    from facenet_core.data.manifest import ManifestLabels

PK_BATCHES = IndexFormat(
    tag="facenet-pk-batches-1",
    what="PK batches",
    count_key="num_batches",
    width=None,
    command="`facenet triplets --sampling pk`",
)
# Bump when the batches drawn for the same (manifest, seed, epoch) would differ.
STAGE_VERSION = 1


@dataclass(frozen=True)
class PKParams(SamplingParams):
    """What an epoch's PK batches depend on besides the manifest and the epoch (the config's fields of
    the pk-batches stage, facenet_core/config/stages.py)."""

    seed: int
    iterations_per_epoch: int
    pk_identities: int
    pk_images: int

    @property
    def batch_images(self) -> int:
        """P x K: images per batch, the width of a row."""
        return self.pk_identities * self.pk_images


def _images_per_identity(rng: np.random.Generator, counts: np.ndarray, k: int) -> np.ndarray:
    """(..., k) image offsets inside each identity of `counts` (...): k distinct when count >= k
    (Floyd's algorithm, vectorised), else all of them then the rest with replacement."""
    picks = np.empty((*counts.shape, k), dtype=np.int64)
    for step in range(k):
        top = counts - k + step
        draw = rng.integers(0, np.maximum(top, 0) + 1)
        taken = (picks[..., :step] == draw[..., None]).any(axis=-1)
        picks[..., step] = np.where(taken, top, draw)
    small = counts < k
    if small.any():
        slots = np.arange(k)
        n = counts[small][:, None]
        again = rng.integers(0, np.broadcast_to(n, (n.shape[0], k)))
        picks[small] = np.where(slots < n, slots, again)
    return picks


def generate_pk_batches(
    labels: np.ndarray, *, seed: int, epoch: int, iterations_per_epoch: int, pk_identities: int, pk_images: int
) -> np.ndarray:
    """int32 (iterations_per_epoch, pk_identities * pk_images) manifest rows of `labels`, identity-major."""
    for name, value in (
        ("iterations_per_epoch", iterations_per_epoch),
        ("pk_identities", pk_identities),
        ("pk_images", pk_images),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    order, starts, counts = class_index(labels)
    eligible = np.flatnonzero(counts >= 2)
    if eligible.size < pk_identities:
        raise UserError(
            f"pk_identities={pk_identities} exceeds the {eligible.size} identities with at least two images "
            "in the manifest; lower pk_identities"
        )
    rng = np.random.default_rng([int(seed), int(epoch)])
    chosen = sample_distinct(rng, eligible, iterations_per_epoch, pk_identities)
    rows = starts[chosen][..., None] + _images_per_identity(rng, counts[chosen], pk_images)
    if order is not None:
        rows = order[rows]
    return rows.reshape(iterations_per_epoch, pk_identities * pk_images).astype(np.int32)


def save_pk_batches(path: str | os.PathLike, batches: np.ndarray, meta: dict) -> Path:
    """Write the `.npy` then its `.json` sidecar (both atomically); `meta` needs manifest_fingerprint."""
    return save_index(path, batches, meta, PK_BATCHES)


def draw_and_save(manifest: ManifestLabels, epoch: int, params: PKParams, path: str | os.PathLike) -> int:
    """Draw epoch `epoch`'s PK batches of `manifest` (its labels: read_manifest_labels) and save them at
    `path` with their sidecar (the manifest's fingerprint, the epoch and `params`); returns how many."""
    batches = generate_pk_batches(manifest.labels, epoch=epoch, **asdict(params))
    save_pk_batches(path, batches, epoch_meta(manifest.fingerprint, epoch, params))
    return len(batches)


def load_pk_batches(
    path: str | os.PathLike,
    manifest_fingerprint: str,
    *,
    pk_identities: int | None = None,
    pk_images: int | None = None,
) -> np.ndarray:
    """PK batches saved by save_pk_batches, refused unless drawn from the manifest with this
    fingerprint (and, where given, with this P and K)."""
    meta = read_sidecar(path, manifest_fingerprint, PK_BATCHES)
    for name, wanted in (("pk_identities", pk_identities), ("pk_images", pk_images)):
        if wanted is not None and meta.get(name) != wanted:
            raise ValueError(
                f"PK batches {path} were drawn with {name}={meta.get(name)}, not {wanted}; draw them again"
            )
    batches = load_index(path, manifest_fingerprint, PK_BATCHES)
    width = meta.get("pk_identities", 0) * meta.get("pk_images", 0)
    if batches.shape[1] != width:
        raise ValueError(f"PK batches {path} have rows of {batches.shape[1]} images, not P x K = {width}")
    return batches
