"""Crop tasks: one per shard of identity folders, then the merged detections table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_core.detect import crop as crop_core
from facenet_core.detect import parallel
from facenet_core.fileio import sha256_file
from tasks.caching import stage_task


@stage_task(
    stage="crop-shard",
    version=crop_core.STAGE_VERSION,
    key_parts=lambda p: {
        "inputs": crop_core.shard_fingerprint(p["input_root"], p["identities"]),
        "options": crop_core.CropOptions(**p["options"]).output_options(),
        "out": p["output_root"],  # the same tree cropped into two folders: two sets of shard tables
    },
    outputs=lambda r: [r["table"]],
    still_valid=lambda files: crop_core.crops_present(files[0]),
    retries=2,
)
def crop_shard(
    workspace: str,
    input_root: str,
    output_root: str,
    identities: list[str],
    options: dict[str, Any],
    seeds: list[str] | None = None,
) -> dict[str, Any]:
    """MTCNN-crop the images of a few identity folders, resuming from the earlier shard tables
    `seeds` (not part of the cache key: they change how much is cropped, not the result); returns
    the shard's detections table."""
    result = parallel.run_shard(input_root, output_root, identities, crop_core.CropOptions(**options), seeds)
    return {**result, "table": str(result["table"])}


@stage_task(
    stage="crop-merge",
    version=crop_core.STAGE_VERSION,
    key_parts=lambda p: {
        "shards": sorted(sha256_file(t) for t in p["shard_tables"]),
        "rejected": sorted(map(tuple, p.get("rejected") or [])),
        "out": p["output_root"],
    },
    outputs=lambda r: [r["detections"]],
)
def merge_detections(
    workspace: str, output_root: str, shard_tables: list[str], rejected: list[list[str]] | None = None
) -> dict[str, Any]:
    """Merge the shard tables and the rows of images no shard takes ([source, reason]) into
    <output_root>/detections.parquet; its sha is the crops' fingerprint."""
    rows = [(source, reason) for source, reason in rejected or []]
    path = crop_core.merge_detections(output_root, [Path(t).stem for t in shard_tables], rows)
    return {"detections": str(path), "fingerprint": sha256_file(path)}
