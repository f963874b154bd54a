"""The detections table: one row per source image, per shard and merged (docs/ARCHITECTURE.md contract plus
`reason`: why a row is not `ok`, null when it is)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path
from facenet_core.safepath import UnsafeNameError, safe_relative

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
    + [pa.field("reason", pa.string())]
)
OPTIONS_KEY = b"facenet.crop_options"
SOURCE_STATS_KEY = b"facenet.source_stats"
SOURCE_DIGESTS_KEY = b"facenet.source_digests"
IDENTITIES_KEY = b"facenet.identities"
SHARDS_DIR = ".shards"
DETECTIONS = "detections.parquet"
SHARD_TABLE = re.compile(r"[0-9a-f]{16}\.parquet")


def empty_row(source: str, status: str, reason: str | None = None) -> dict[str, Any]:
    """A row with only `source`, `status` and `reason` set (the other columns null)."""
    if status not in STATUSES:
        raise ValueError(f"unknown detection status {status!r}: expected one of {STATUSES}")
    row = dict.fromkeys(SCHEMA.names)
    row.update(source=source, status=status, reason=reason)
    return row


def write_table(
    path: Path,
    rows: list[dict[str, Any]],
    options: dict[str, Any],
    source_stats: dict[str, list[int]] | None = None,
    identities: list[str] | None = None,
    source_digests: dict[str, str] | None = None,
) -> Path:
    """Write `rows` (sorted by source) atomically, with the crop options in the file's metadata and,
    for shard tables, each source's [size, mtime_ns] and sha256 as they were when its row was made
    and the shard's identity folders (so a later run finds the rows of a folder without reading
    every table)."""
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["source"]), schema=SCHEMA)
    metadata = {OPTIONS_KEY: json.dumps(options, sort_keys=True).encode()}
    if source_stats is not None:
        metadata[SOURCE_STATS_KEY] = json.dumps(source_stats, sort_keys=True).encode()
    if source_digests is not None:
        metadata[SOURCE_DIGESTS_KEY] = json.dumps(source_digests, sort_keys=True).encode()
    if identities is not None:
        metadata[IDENTITIES_KEY] = json.dumps(sorted(identities)).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_table(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows (every column of SCHEMA; `reason` null in tables written before it existed) and recorded
    crop options of a detections file."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(OPTIONS_KEY)
    rows = table.to_pylist()
    if "reason" not in table.column_names:
        for row in rows:
            row["reason"] = None
    return rows, (json.loads(raw) if raw else None)


def table_identities(path: Path) -> set[str]:
    """The identity folders whose rows a shard table holds (from its metadata, or its sources)."""
    raw = (pq.read_schema(path).metadata or {}).get(IDENTITIES_KEY)
    if raw:
        return set(json.loads(raw))
    sources = pq.read_table(path, columns=["source"]).column("source").to_pylist()
    return {source.split("/", 1)[0] for source in sources}


def read_source_records(path: Path) -> tuple[dict[str, list[int]] | None, dict[str, str]]:
    """The [size, mtime_ns] (None for tables written without them) and the sha256 (empty for tables
    written without them) per source that a shard table recorded."""
    metadata = pq.read_schema(path).metadata or {}
    stats, digests = metadata.get(SOURCE_STATS_KEY), metadata.get(SOURCE_DIGESTS_KEY)
    return (json.loads(stats) if stats else None), (json.loads(digests) if digests else {})


def shard_table_path(output_root: str | Path, shard: str) -> Path:
    """Where the detections of one shard live."""
    return Path(output_root) / SHARDS_DIR / f"{shard}.parquet"


def shard_tables(output_root: str | Path) -> list[Path]:
    """The shard tables the crop stage wrote under `output_root` (named `<16 hex digits>.parquet`)."""
    folder = Path(output_root) / SHARDS_DIR
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if SHARD_TABLE.fullmatch(path.name) and path.is_file())


def tables_holding(output_root: str | Path, identities: list[str]) -> list[str]:
    """Ids of the shard tables under `output_root` that hold rows of any of `identities`."""
    wanted = set(identities)
    return [path.stem for path in shard_tables(output_root) if table_identities(path) & wanted]


def check_options(table: Path, recorded: dict[str, Any] | None, options: dict[str, Any]) -> None:
    """Refuse a table written with other output options (an earlier stage version is fine: its rows
    are checked one by one)."""
    if recorded is not None and recorded.get("stage_version", 0) > options["stage_version"]:
        raise UserError(f"{table} was written by a newer facenet-flow: crop into a new output folder")
    if recorded is None or {**recorded, "stage_version": 0} != {**options, "stage_version": 0}:
        raise UserError(
            f"{table} was written with crop options {recorded}, not {options}: crop into a new output folder"
        )


def listed_output(output_root: Path, output: str) -> Path | None:
    """The PNG a table row names, if it is one inside `output_root` (a table edited by hand names none)."""
    if not output.endswith(".png"):
        return None
    try:
        return safe_relative(output_root, output, what="crop")
    except UnsafeNameError:
        return None


def merge_detections(
    output_root: str | Path, shard_ids: list[str] | None = None, rejected: Sequence[Sequence[str]] = ()
) -> Path:
    """Combine the shard tables under `output_root` (all, or those of `shard_ids`) and the
    `unreadable` rows of `rejected` (source, reason: images no shard could take) into
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
    rows.update((source, empty_row(source, "unreadable", reason)) for source, reason in rejected)
    return write_table(output_root / DETECTIONS, list(rows.values()), options or {})
