"""The detections table: one row per source image, per shard and merged (DESIGN.md's contract)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from facenet_core.fileio import atomic_path

STATUSES = ("ok", "no_face", "unreadable", "too_small")
BOX = ("x1", "y1", "x2", "y2")
CROP = ("crop_x1", "crop_y1", "crop_x2", "crop_y2")
LANDMARKS = tuple(f"lm_x{k}" for k in range(1, 6)) + tuple(f"lm_y{k}" for k in range(1, 6))
SCHEMA = pa.schema(
    [pa.field("source", pa.string()), pa.field("output", pa.string()), pa.field("status", pa.string())]
    + [pa.field(name, pa.float64()) for name in BOX]
    + [pa.field(name, pa.int32()) for name in CROP]
    + [pa.field("score", pa.float64())]
    + [pa.field(name, pa.float64()) for name in LANDMARKS]
    + [pa.field(name, pa.int32()) for name in ("n_faces", "width", "height")]
)
OPTIONS_KEY = b"facenet.crop_options"
SOURCE_STATS_KEY = b"facenet.source_stats"
SHARDS_DIR = ".shards"
DETECTIONS = "detections.parquet"


def empty_row(source: str, status: str) -> dict[str, Any]:
    """A row with only `source` and `status` set (the other columns null)."""
    if status not in STATUSES:
        raise ValueError(f"unknown detection status {status!r}: expected one of {STATUSES}")
    row = dict.fromkeys(SCHEMA.names)
    row.update(source=source, status=status)
    return row


def write_table(
    path: Path,
    rows: list[dict[str, Any]],
    options: dict[str, Any],
    source_stats: dict[str, list[int]] | None = None,
) -> Path:
    """Write `rows` (sorted by source) atomically, with the crop options in the file's metadata and,
    for shard tables, each source's [size, mtime_ns] as it was when its row was made."""
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["source"]), schema=SCHEMA)
    metadata = {OPTIONS_KEY: json.dumps(options, sort_keys=True).encode()}
    if source_stats is not None:
        metadata[SOURCE_STATS_KEY] = json.dumps(source_stats, sort_keys=True).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_table(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows and recorded crop options of a detections file."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(OPTIONS_KEY)
    return table.to_pylist(), (json.loads(raw) if raw else None)


def read_source_stats(path: Path) -> dict[str, list[int]] | None:
    """The [size, mtime_ns] per source a shard table recorded (None for tables written without them)."""
    raw = (pq.read_schema(path).metadata or {}).get(SOURCE_STATS_KEY)
    return json.loads(raw) if raw else None


def shard_table_path(output_root: str | Path, shard: str) -> Path:
    """Where the detections of one shard live."""
    return Path(output_root) / SHARDS_DIR / f"{shard}.parquet"


def merge_detections(output_root: str | Path, shard_ids: list[str] | None = None) -> Path:
    """Combine the shard tables under `output_root` (all, or those of `shard_ids`) into
    `output_root/detections.parquet`; a source recorded by several shards keeps its newest row."""
    output_root = Path(output_root)
    if shard_ids is None:
        parts = list((output_root / SHARDS_DIR).glob("*.parquet"))
    else:
        parts = [shard_table_path(output_root, shard) for shard in shard_ids]
    missing = [str(p) for p in parts if not p.is_file()]
    if not parts or missing:
        where = output_root / SHARDS_DIR
        raise FileNotFoundError(f"shard tables missing under {where} ({missing}): run the crop stage first")
    rows: dict[str, dict[str, Any]] = {}
    options = None
    for part in sorted(parts, key=lambda p: p.stat().st_mtime_ns):
        part_rows, part_options = read_table(part)
        if options is not None and part_options != options:
            raise ValueError(f"{part} was cropped with other options than the other shards: recrop into a new folder")
        options = part_options
        rows.update((row["source"], row) for row in part_rows)
    return write_table(output_root / DETECTIONS, list(rows.values()), options or {})
