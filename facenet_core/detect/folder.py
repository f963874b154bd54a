"""The crop output folder as a whole, handled by the one caller that crops all of it (`crop_tree`,
the crop flow), never by a shard: refuse an output folder that overlaps the input, hold the
folder's lock, clean what a killed run left at its root, tell each shard which earlier tables hold
rows of its identity folders, and drop the tables and crops that no current shard needs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock
import pyarrow.parquet as pq

from facenet_core.detect.shards import list_shards, rejected_folders, shard_id
from facenet_core.detect.table import (
    DETECTIONS,
    SHARD_TABLE,
    SHARDS_DIR,
    listed_output,
    shard_tables,
    table_identities,
)
from facenet_core.errors import UserError
from facenet_core.fileio import remove_stale_temporaries

log = logging.getLogger(__name__)

LOCK_FILE = ".crop.lock"


def check_folders(input_root: str | Path, output_root: str | Path) -> None:
    """Refuse an output folder equal to, inside or containing the input folder (symlinks followed):
    the crops would overwrite the images, or be cropped again as images on the next run."""
    source, target = Path(input_root).resolve(), Path(output_root).resolve()
    if target == source:
        problem = "is the input folder"
    elif source in target.parents:
        problem = f"is inside the input folder {input_root}"
    elif target in source.parents:
        problem = f"contains the input folder {input_root}"
    else:
        return
    raise UserError(f"output folder {output_root} {problem}: choose one that does not overlap the input folder")


@contextlib.contextmanager
def output_lock(output_root: str | Path, wait: bool) -> Iterator[None]:
    """Hold `output_root`'s lock for a whole crop: another crop of that folder waits for it (`wait`)
    or stops at once with a UserError saying the folder is busy. An OS lock (filelock): released
    when its holder dies, so it never goes stale."""
    path = Path(output_root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        busy = f"output folder {output_root} is being written by another crop (lock file {path})"
        if not wait:
            raise UserError(f"{busy}: wait for it to finish") from None
        log.warning("%s: waiting for it to finish", busy)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class CropPlan:
    """The shards of a crop, the earlier shard tables each one resumes from, and the (source, reason)
    of the images that no shard takes (identity folders whose names are not valid UTF-8)."""

    shards: list[list[str]]
    seeds: list[list[str]]
    rejected: list[tuple[str, str]]

    @property
    def ids(self) -> list[str]:
        return [shard_id(identities) for identities in self.shards]


def plan_crop(input_root: str | Path, output_root: str | Path, shard_size: int) -> CropPlan:
    """Shards of `input_root`, with the ids of the earlier tables under `output_root` that hold rows
    of each shard's identity folders, so regrouped shards crop nothing again."""
    shards = list_shards(input_root, shard_size)
    held = {path.stem: table_identities(path) for path in shard_tables(output_root)}
    seeds = [[table for table, names in held.items() if names.intersection(identities)] for identities in shards]
    return CropPlan(shards, seeds, rejected_folders(input_root))


def remove_root_temporaries(output_root: str | Path) -> int:
    """Delete what a killed crop left half-written at the folder's root: `detections.parquet` and
    shard-table temporaries. Call it holding the lock."""
    root = Path(output_root)
    shards = remove_stale_temporaries(root / SHARDS_DIR, lambda name: bool(SHARD_TABLE.fullmatch(name)))
    return shards + remove_stale_temporaries(root, {DETECTIONS})


def _crops_listed(table: Path) -> set[str]:
    rows = pq.read_table(table, columns=["output", "status"]).to_pylist()
    return {row["output"] for row in rows if row["status"] == "ok" and row["output"]}


def drop_unneeded(output_root: str | Path, current_ids: list[str]) -> dict[str, int]:
    """Delete the shard tables no current shard has (their identity folders are gone, or regrouped
    into current shards that took their rows) and the PNGs they list that no current table lists.
    Nothing else: no file that the stage's tables do not name. Call it once every shard is done."""
    root = Path(output_root)
    current = set(current_ids)
    tables = shard_tables(root)
    old = [table for table in tables if table.stem not in current]
    if not old:
        return {"dropped": 0, "removed": 0}
    kept: set[str] = set()
    for table in tables:
        if table.stem in current:
            kept |= _crops_listed(table)
    removed = 0
    for table in old:
        for output in sorted(_crops_listed(table) - kept):
            target = listed_output(root, output)
            if target is not None and target.is_file():
                target.unlink()
                removed += 1
    for table in old:
        table.unlink()
    return {"dropped": len(old), "removed": removed}
