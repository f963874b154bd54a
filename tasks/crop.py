"""Crop tasks: one per shard of identity folders, then the merged detections table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_core.detect import crop as crop_core
from facenet_core.detect import parallel
from facenet_core.detect.options import CropOptions
from facenet_core.fileio import sha256_file
from facenet_core.workspace import Workspace
from tasks.caching import stage_task
from tasks.results import Detections, ShardResult


def shard_key(input_root: Path, output_root: Path, identities: list[str], options: CropOptions) -> dict[str, Any]:
    """A shard's crops depend on its images' content and the output options; the same tree cropped
    into two folders makes two sets of shard tables."""
    return {
        "inputs": crop_core.shard_fingerprint(input_root, identities),
        "options": options.output_options(),
        "out": str(output_root),
    }


@stage_task(
    stage="crop-shard",
    version=crop_core.STAGE_VERSION,
    key=shard_key,
    outputs=lambda shard: [shard.table],
    still_valid=lambda files: crop_core.crops_present(files[0]),
    retries=2,
)
def crop_shard_task(
    workspace: Workspace,
    input_root: Path,
    output_root: Path,
    identities: list[str],
    options: CropOptions,
    seeds: list[str] | None = None,
    pool: parallel.CropPool | None = None,
) -> ShardResult:
    """MTCNN-crop the images of a few identity folders, resuming from the earlier shard tables
    `seeds` (not part of the cache key: they change how much is cropped, not the result), in the
    flow run's worker processes `pool` (in this thread without one); returns the shard's detections table."""
    result = parallel.run_shard(input_root, output_root, identities, options, seeds, pool)
    counts = {name: value for name, value in result.items() if name != "table"}
    return ShardResult(Path(result["table"]), counts)


def merge_key(output_root: Path, shard_tables: list[Path], rejected: list[tuple[str, str]]) -> dict[str, Any]:
    """The merged table depends on the shard tables' content and the rows of images no shard takes."""
    return {
        "shards": sorted(sha256_file(table) for table in shard_tables),
        "rejected": sorted(map(tuple, rejected)),
        "out": str(output_root),
    }


@stage_task(
    stage="crop-merge",
    version=crop_core.STAGE_VERSION,
    key=merge_key,
    outputs=lambda detections: [detections.path],
)
def merge_shards_task(
    workspace: Workspace, output_root: Path, shard_tables: list[Path], rejected: list[tuple[str, str]]
) -> Detections:
    """Merge the shard tables and the rows of images no shard takes ((source, reason)) into
    <output_root>/detections.parquet; its sha is the crops' fingerprint."""
    path = crop_core.merge_detections(output_root, [table.stem for table in shard_tables], list(rejected))
    return Detections(Path(path), sha256_file(path))
