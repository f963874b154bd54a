"""What stage tasks hand back to the flows: typed records of the files a stage produced.

Prefect persists them (pickled) under the workspace's prefect-results/, so a Cached stage returns the
same record; every path is absolute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoArchive:
    """The synthetic demo identities packed as an archive, and its sha256."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class RawData:
    """A dataset fetched and extracted: its folder of identity folders, and the marker file that says
    the extraction finished (None for data used where it lies)."""

    root: Path
    marker: Path | None = None


@dataclass(frozen=True)
class ManifestFile:
    """The Parquet manifest of a cropped tree, its content fingerprint and the scan's summary."""

    path: Path
    fingerprint: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardResult:
    """One crop shard's table (OUTPUT_ROOT/.shards/<id>.parquet) and its counts per status."""

    table: Path
    counts: dict[str, int]


@dataclass(frozen=True)
class Detections:
    """A crop's merged detections.parquet; its sha256 is the crops' fingerprint."""

    path: Path
    fingerprint: str


@dataclass(frozen=True)
class EpochIndexFile:
    """One epoch's index of manifest rows (.npy with its .json sidecar) that a train epoch reads, its
    sha256 and how many rows it holds."""

    path: Path
    sha256: str
    count: int


@dataclass(frozen=True)
class TripletsFile(EpochIndexFile):
    """One epoch's triplets (sampling: triplets); `count` triplets."""


@dataclass(frozen=True)
class PKBatchesFile(EpochIndexFile):
    """One epoch's P x K batches (sampling: pk); `count` batches."""


@dataclass(frozen=True)
class EpochCheckpoint:
    """A trained epoch's weights file (checkpoints/epoch_<e>.pt), its sha256 and the epoch's summary.

    `sha256` is None only for an epoch found trained in the run folder with its file already deleted
    by checkpoint_retention (nothing left to hash)."""

    path: Path
    sha256: str | None
    epoch: int
    summary: dict[str, Any] = field(default_factory=dict)
