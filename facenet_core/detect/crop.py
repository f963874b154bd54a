"""The crop stage: detect one face per image, cut it out, resize it, save a PNG, record a row.

`crop_shard` is a pure function of its arguments (paths, identity names, options), safe to call
from Prefect tasks in threads or processes and from Dask workers (`facenet_core.detect.parallel`
runs many of them in worker processes). Reruns skip images already recorded with their PNG in
place; PNGs are written under temporary names, so a killed run leaves none half-written.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from facenet_core.detect.detector import MTCNN, Faces
from facenet_core.detect.images import load_rgb
from facenet_core.detect.options import STAGE_VERSION, CropOptions
from facenet_core.detect.select import choose_face, crop_box
from facenet_core.detect.shards import list_shards, plan, shard_fingerprint, shard_id
from facenet_core.detect.table import (
    BOX,
    CROP,
    LANDMARKS,
    empty_row,
    merge_detections,
    read_source_stats,
    read_table,
    shard_table_path,
    write_table,
)
from facenet_core.fileio import atomic_path, remove_stale_temporaries
from facenet_core.memory import keep_freed_memory

__all__ = [
    "STAGE_VERSION",
    "CropOptions",
    "crop_shard",
    "list_shards",
    "merge_detections",
    "shard_fingerprint",
    "shard_id",
]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0
COUNT_KEYS = ("ok", "no_face", "unreadable", "too_small", "bad_name", "resumed", "renamed", "cleaned", "removed")


_torch_threads_lock = threading.Lock()
_torch_threads_users = 0
_torch_threads_default = 1


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the calling thread's torch ops on one core: parallelism comes from shards (threads or
    processes), and intra-op threads on MTCNN's small layers cost more than they bring on a busy CPU.

    torch keeps a count per thread and a process default, which a thread takes on its first torch
    call and `set_num_threads` overwrites. So the thread is initialised before it switches to one,
    the first shard in records the process default, and every shard restores its thread and the
    default to it: overlapping shards used to leave the process on one thread for training.
    """
    global _torch_threads_users, _torch_threads_default
    torch.get_num_threads()  # this thread takes the process default now, not in the middle of the shard
    with _torch_threads_lock:
        if _torch_threads_users == 0:
            _torch_threads_default = torch.get_num_threads()
        _torch_threads_users += 1
        default = _torch_threads_default
    torch.set_num_threads(1)
    try:
        yield
    finally:
        with _torch_threads_lock:
            _torch_threads_users -= 1
        torch.set_num_threads(default)


@functools.lru_cache(maxsize=4)
def _detector(device: str, min_face_size: int, thresholds: tuple[float, ...], factor: float) -> MTCNN:
    return MTCNN(device, min_face_size, thresholds, factor)


def _decode(path: Path, exif_transpose: bool) -> np.ndarray | None:
    try:
        return load_rgb(path, exif_transpose)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _decoded(paths: list[Path], options: CropOptions, pool: ThreadPoolExecutor) -> Iterator[np.ndarray | None]:
    """Decoded images in order, decoding up to two batches ahead in the thread pool."""
    window = 2 * options.batch_size
    pending: deque[Future] = deque()
    for index, path in enumerate(paths):
        pending.append(pool.submit(_decode, path, options.exif_transpose))
        if index >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _save_png(pixels: np.ndarray, target: Path, size: int, compress_level: int) -> None:
    image = Image.fromarray(pixels).resize((size, size), Image.BILINEAR)
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG", compress_level=compress_level)


def _face_row(source: str, output: str, img: np.ndarray, faces: Faces, margin: int) -> tuple[dict, tuple | None]:
    """The table row of a decoded image and the integer crop box (None when nothing to crop)."""
    height, width = img.shape[:2]
    n = faces.boxes.shape[0]
    row = empty_row(source, "no_face")
    row.update(n_faces=n, width=width, height=height)
    if n == 0:
        return row, None
    i = choose_face(faces.boxes, height, width)
    box = crop_box(faces.boxes[i], margin, height, width)
    row.update(zip(BOX, map(float, faces.boxes[i, :4]), strict=True))
    row.update(zip(CROP, box, strict=True))
    row.update(zip(LANDMARKS, map(float, faces.points[i]), strict=True), score=float(faces.boxes[i, 4]))
    if box[2] <= box[0] or box[3] <= box[1]:
        return row, None
    row.update(status="ok", output=output)
    return row, box


def _previous_rows(table: Path, options: CropOptions) -> dict[str, dict[str, Any]]:
    if not table.exists():
        return {}
    rows, recorded = read_table(table)
    if recorded != options.output_options():
        raise ValueError(
            f"{table} was written with crop options {recorded}, not {options.output_options()}: "
            "crop into a new output folder"
        )
    return {row["source"]: row for row in rows}


def crops_present(table: str | Path) -> bool:
    """Whether every PNG a shard table (OUTPUT_ROOT/.shards/<id>.parquet) lists as cropped exists."""
    output_root = Path(table).parent.parent
    rows = pq.read_table(table, columns=["output", "status"]).to_pylist()
    return all((output_root / row["output"]).is_file() for row in rows if row["status"] == "ok")


def _size_and_mtime(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _unchanged_sources(table: Path, stats: dict[str, list[int]]) -> set[str]:
    """Sources whose size and mtime are those the shard table recorded with their rows. Tables
    written before sizes were recorded: sources not modified after the table was written."""
    if not table.is_file():
        return set()
    recorded = read_source_stats(table)
    if recorded is None:
        written = table.stat().st_mtime_ns
        return {src for src, (_, mtime) in stats.items() if mtime <= written}
    return {src for src, stat in stats.items() if recorded.get(src) == stat}


def _stats_of(rows: list[dict[str, Any]], stats: dict[str, list[int]]) -> dict[str, list[int]]:
    return {row["source"]: stats[row["source"]] for row in rows}


def _is_done(row: dict[str, Any] | None, output: str, output_root: Path, source_unchanged: bool) -> bool:
    """A recorded row still holds: its source was not modified since and its PNG (if any) exists."""
    if row is None or not source_unchanged:
        return False
    if row["status"] == "ok":
        return row["output"] == output and (output_root / output).is_file()
    return row["output"] is None


def _remove_stale_temporaries(output_root: Path, table: Path, jobs: list[tuple[str, str]]) -> int:
    """Remove half-written PNGs and tables that a killed run of this shard left behind."""
    outputs: dict[Path, set[str]] = {table.parent: {table.name}}
    for _, out in jobs:
        target = output_root / out
        outputs.setdefault(target.parent, set()).add(target.name)
    return sum(remove_stale_temporaries(folder, names) for folder, names in outputs.items())


def _remove_outdated_outputs(
    output_root: Path, previous: dict[str, dict[str, Any]], jobs: list[tuple[str, str]], rows: list[dict[str, Any]]
) -> int:
    """Delete PNGs of earlier runs that no row vouches for now: their source is gone, renamed, or no
    longer shows a face. Otherwise the manifest, which scans the crop folder, would still train on them."""
    current = {row["output"] for row in rows if row["status"] == "ok"}
    earlier = {row["output"] for row in previous.values() if row["output"]} | {out for _, out in jobs}
    removed = 0
    for output in sorted(earlier - current):
        target = output_root / output
        if target.is_file():
            target.unlink()
            removed += 1
    return removed


def crop_shard(
    input_root: str | Path, output_root: str | Path, identities: list[str], options: CropOptions
) -> dict[str, Any]:
    """Crop every image of `identities`; write PNGs and `output_root/.shards/<shard_id>.parquet`.

    Returns counts per status plus `bad_name` (images skipped: name not valid UTF-8), `resumed`
    (rows kept from an earlier run), `renamed` (outputs named `<stem>.<ext>.png` because another
    file of the folder had the same stem), `cleaned` (temporaries of a killed earlier run removed),
    `removed` (PNGs of an earlier run that no longer stand for a face of a present source) and `table`.
    """
    input_root, output_root = Path(input_root), Path(output_root)
    table = shard_table_path(output_root, shard_id(identities))
    previous = _previous_rows(table, options)
    jobs, bad_names = plan(input_root, identities)
    if bad_names:
        log.warning("%d images skipped, their names are not valid UTF-8: %s", len(bad_names), ", ".join(bad_names))
    stats = {src: _size_and_mtime(input_root / src) for src, _ in jobs}
    unchanged = _unchanged_sources(table, stats)
    rows = [previous[src] for src, out in jobs if _is_done(previous.get(src), out, output_root, src in unchanged)]
    done = {row["source"] for row in rows}
    todo = [(src, out) for src, out in jobs if src not in done]
    counts = Counter(
        bad_name=len(bad_names),
        resumed=len(rows),
        renamed=sum(Path(out).stem != Path(src).stem for src, out in jobs),
        cleaned=_remove_stale_temporaries(output_root, table, jobs),
    )
    keep_freed_memory()
    detector = _detector(options.resolved_device(), options.min_face_size, options.thresholds, options.factor)
    last_flush = time.monotonic()
    with _one_torch_thread(), ThreadPoolExecutor(max_workers=2) as pool:
        batch: list[tuple[str, str, np.ndarray]] = []
        decoded = _decoded([input_root / src for src, _ in todo], options, pool)
        for (src, out), img in zip(todo, decoded, strict=True):
            if img is None or min(img.shape[:2]) < options.min_face_size:
                row = empty_row(src, "unreadable" if img is None else "too_small")
                if img is not None:
                    row.update(width=img.shape[1], height=img.shape[0], n_faces=0)
                rows.append(row)
                continue
            batch.append((src, out, img))
            if len(batch) == options.batch_size:
                rows += _crop_batch(batch, detector, output_root, options, pool)
                batch = []
            if time.monotonic() - last_flush > FLUSH_SECONDS:
                write_table(table, rows, options.output_options(), _stats_of(rows, stats))
                last_flush = time.monotonic()
        if batch:
            rows += _crop_batch(batch, detector, output_root, options, pool)
    write_table(table, rows, options.output_options(), _stats_of(rows, stats))
    counts["removed"] = _remove_outdated_outputs(output_root, previous, jobs, rows)
    counts.update(row["status"] for row in rows)
    summary: dict[str, Any] = {key: counts[key] for key in COUNT_KEYS}
    return summary | {"table": str(table)}


def _crop_batch(
    batch: list[tuple[str, str, np.ndarray]],
    detector: MTCNN,
    output_root: Path,
    options: CropOptions,
    pool: ThreadPoolExecutor,
) -> list[dict[str, Any]]:
    """Detect a batch, save its crops (PNG encoding in the pool) and return its rows once saved."""
    rows, saves = [], []
    for (src, out, img), faces in zip(batch, detector.detect([img for _, _, img in batch]), strict=True):
        row, box = _face_row(src, out, img, faces, options.margin)
        if box is not None:
            x1, y1, x2, y2 = box
            target = output_root / out
            saves.append(
                pool.submit(_save_png, img[y1:y2, x1:x2], target, options.image_size, options.png_compress_level)
            )
        rows.append(row)
    for future in saves:
        future.result()
    return rows
