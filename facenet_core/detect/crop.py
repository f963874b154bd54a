"""The crop stage: detect one face per image, cut it out and resize it (or align it on its
landmarks: `CropOptions.method`), save a PNG, record a row.

`crop_shard` is a pure function of its arguments (paths, identity names, options), safe to call
from Prefect tasks in threads or processes and from Dask workers (`facenet_core.detect.parallel`
runs many of them in worker processes). Reruns skip images already recorded with their PNG in
place, in the shard's table or in any earlier table of the output folder (shards regroup when
identity folders come and go); PNGs are written under temporary names, so a killed run leaves none
half-written. The caller holds the output folder's lock (`facenet_core.detect.folder`): a shard
removes the temporaries and the outdated PNGs of its identity folders, which only one crop may do.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from facenet_core.detect.detector import MTCNN, Faces, fits_batch, shared_detector
from facenet_core.detect.options import STAGE_VERSION, CropOptions
from facenet_core.detect.select import choose_face, crop_box, face_crop, is_empty, too_small
from facenet_core.detect.shards import NOT_UTF8_FILE, list_shards, plan, shard_fingerprint, shard_id
from facenet_core.detect.table import (
    BOX,
    CROP,
    LANDMARKS,
    STATUSES,
    check_options,
    empty_row,
    listed_output,
    merge_detections,
    read_source_records,
    read_table,
    shard_table_path,
    tables_holding,
    write_table,
)
from facenet_core.fileio import atomic_path, remove_stale_temporaries, sha256_file
from facenet_core.images import is_image_name, load_rgb
from facenet_core.memory import keep_freed_memory
from facenet_core.torch_settings import ONE_TORCH_THREAD

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


def _decode(path: Path, exif_transpose: bool, source: str) -> tuple[np.ndarray | str, str | None]:
    """The pixels and the file's sha256 (so a later run recognises the same bytes under a new
    modification time), or the decoder's message (the file named by its `source`, not its absolute
    path) and None: a file that is no image is not read whole, and is cheap to try again."""
    try:
        pixels = load_rgb(path, exif_transpose)
        return pixels, sha256_file(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        message = str(error).replace(str(path), source) or "no message"
        return f"{type(error).__name__}: {message}", None


def _decoded(
    paths: list[tuple[Path, str]], options: CropOptions, pool: ThreadPoolExecutor
) -> Iterator[tuple[np.ndarray | str, str | None]]:
    """Decoded images in order, decoding ahead in the thread pool up to two batches of images and of
    pixels (read from the files' headers): a run of huge photos is not all decoded at once."""
    pending: deque[tuple[Future, int]] = deque()
    ahead = 0
    for path, source in paths:
        pixels = _header_pixels(path)
        while pending and (len(pending) > 2 * options.batch_size or ahead + pixels > 2 * options.batch_pixels):
            future, done = pending.popleft()
            ahead -= done
            yield future.result()
        pending.append((pool.submit(_decode, path, options.exif_transpose, source), pixels))
        ahead += pixels
    while pending:
        yield pending.popleft()[0].result()


def _header_pixels(path: Path) -> int:
    """Width x height as the file's header gives them (0 if unreadable): what decoding it will hold."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0


def _save_png(
    img: np.ndarray, box: tuple[int, int, int, int], points: np.ndarray, target: Path, options: CropOptions
) -> None:
    image = face_crop(img, box, points, options.image_size, options.method)
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG", compress_level=options.png_compress_level)


Kept = tuple[tuple[int, int, int, int], np.ndarray]


def _face_row(source: str, output: str, img: np.ndarray, faces: Faces, margin: int) -> tuple[dict, Kept | None]:
    """The table row of a decoded image and the kept face's integer crop box and 10 landmark values
    (None when nothing to crop)."""
    height, width = img.shape[:2]
    n = faces.boxes.shape[0]
    row = empty_row(source, "no_face", "no face found")
    row.update(n_faces=n, width=width, height=height)
    if n == 0:
        return row, None
    i = choose_face(faces.boxes, height, width)
    box = crop_box(faces.boxes[i], margin, height, width)
    row.update(zip(BOX, map(float, faces.boxes[i, :4]), strict=True))
    row.update(zip(CROP, box, strict=True))
    row.update(zip(LANDMARKS, map(float, faces.points[i]), strict=True), score=float(faces.boxes[i, 4]))
    if is_empty(box):
        row["reason"] = "the face box is empty once clipped to the image"
        return row, None
    row.update(status="ok", output=output, reason=None)
    return row, (box, faces.points[i])


class EarlierRow(NamedTuple):
    """A row an earlier run recorded, with what its source was then: [size, mtime_ns] ([] when not
    recorded; None: the table predates source stats) and sha256 (None when not recorded), and when
    its table was written."""

    row: dict[str, Any]
    stat: list[int] | None
    digest: str | None
    written: int


Earlier = dict[str, EarlierRow]


def _earlier_rows(output_root: Path, identities: list[str], options: CropOptions, seeds: list[str] | None) -> Earlier:
    """Rows that earlier runs recorded for the images of `identities`, from every shard table of the
    folder holding them (`seeds`, found here when None; the newest table wins)."""
    if seeds is None:
        seeds = tables_holding(output_root, identities)
    wanted = set(identities)
    tables = [path for path in (shard_table_path(output_root, seed) for seed in seeds) if path.is_file()]
    earlier: Earlier = {}
    for table in sorted(tables, key=lambda path: path.stat().st_mtime_ns):
        rows, recorded = read_table(table)
        check_options(table, recorded, options.output_options())
        stats, digests = read_source_records(table)
        written = table.stat().st_mtime_ns
        for row in rows:
            source = row["source"]
            if source.split("/", 1)[0] in wanted:
                stat = None if stats is None else stats.get(source, [])
                earlier[source] = EarlierRow(row, stat, digests.get(source), written)
    return earlier


def image_count(input_root: str | Path, shards: list[list[str]]) -> int:
    """How many images the shards hold, from the folders' listings alone (names, no reads or stats):
    the total of a progress bar (LFW's 13,233 images: 0.2 s)."""
    total = 0
    for name in (name for shard in shards for name in shard):
        folder = Path(input_root, name)
        if folder.is_dir():
            with os.scandir(folder) as entries:
                total += sum(is_image_name(entry.name) for entry in entries)
    return total


def images_of(counts: dict[str, Any]) -> int:
    """Images a shard's summary accounts for (one row each, whatever its status)."""
    return sum(counts[status] for status in STATUSES)


def crops_present(table: str | Path) -> bool:
    """Whether every PNG a shard table (OUTPUT_ROOT/.shards/<id>.parquet) lists as cropped exists."""
    output_root = Path(table).parent.parent
    rows = pq.read_table(table, columns=["output", "status"]).to_pylist()
    return all((output_root / row["output"]).is_file() for row in rows if row["status"] == "ok")


def _size_and_mtime(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _of_rows(rows: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """`values` (per source) of the sources of `rows`."""
    return {row["source"]: values[row["source"]] for row in rows if row["source"] in values}


def _source_unchanged(entry: EarlierRow, stat: list[int], path: Path) -> bool:
    """The source is as it was when the row was made: the size and mtime recorded with it, or the
    same size and sha256 under a new mtime (a tree copied or restored without its timestamps);
    tables without source stats: not modified since the table was written."""
    if entry.stat is None:
        return stat[1] <= entry.written
    if entry.stat == stat:
        return True
    if entry.digest is None or entry.stat[:1] != stat[:1]:
        return False
    try:
        return sha256_file(path) == entry.digest
    except OSError:
        return False


def _is_done(earlier: Earlier, source: str, output: str, stat: list[int], input_root: Path, output_root: Path) -> bool:
    """An earlier row still holds: its PNG (if any) exists, a row that is not `ok` says why (rows of
    tables written before `reason` existed are made again), and its source is unchanged."""
    entry = earlier.get(source)
    if entry is None:
        return False
    row = entry.row
    if row["status"] == "ok":
        holds = row["output"] == output and (output_root / output).is_file()
    else:
        holds = row["output"] is None and row["reason"] is not None
    return holds and _source_unchanged(entry, stat, input_root / source)


def _remove_stale_temporaries(output_root: Path, table: Path, jobs: list[tuple[str, str]]) -> int:
    """Remove half-written PNGs and tables that a killed run of this shard left behind."""
    outputs: dict[Path, set[str]] = {table.parent: {table.name}}
    for _, out in jobs:
        target = output_root / out
        outputs.setdefault(target.parent, set()).add(target.name)
    return sum(remove_stale_temporaries(folder, names) for folder, names in outputs.items())


def _remove_outdated_outputs(
    output_root: Path, earlier: Earlier, jobs: list[tuple[str, str]], rows: list[dict[str, Any]]
) -> int:
    """Delete PNGs of earlier runs that no row vouches for now: their source is gone, renamed, or no
    longer shows a face. Otherwise the manifest, which scans the crop folder, would still train on them.
    Only PNGs inside the output folder that an earlier table listed or this shard would write."""
    current = {row["output"] for row in rows if row["status"] == "ok"}
    listed = {entry.row["output"] for entry in earlier.values() if entry.row["output"]} | {out for _, out in jobs}
    removed = 0
    for output in sorted(listed - current):
        target = listed_output(output_root, output)
        if target is not None and target.is_file():
            target.unlink()
            removed += 1
    return removed


def crop_shard(
    input_root: str | Path,
    output_root: str | Path,
    identities: list[str],
    options: CropOptions,
    seeds: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Crop every image of `identities`; write PNGs and `output_root/.shards/<shard_id>.parquet`.

    `seeds`: ids of the earlier shard tables of the folder that hold rows of these identities (found
    here when None). Returns counts per status plus `bad_name` (`unreadable` rows of images whose
    name is not valid UTF-8), `resumed` (rows kept from an earlier run), `renamed` (outputs named
    `<stem>.<ext>.png` because another file of the folder had the same stem), `cleaned` (temporaries
    of a killed earlier run removed), `removed` (PNGs of an earlier run that no longer stand for a
    face of a present source) and `table`.

    `progress(n)` is called as rows are made, n images at a time (kept rows first, then each image
    or batch); the n add up to the shard's images.
    """
    advance = progress or (lambda n: None)
    input_root, output_root = Path(input_root), Path(output_root)
    table = shard_table_path(output_root, shard_id(identities))
    earlier = _earlier_rows(output_root, identities, options, None if seeds is None else sorted({*seeds, table.stem}))
    jobs, rejected = plan(input_root, identities)
    if rejected:
        listed = "; ".join(f"{source} ({reason})" for source, reason in rejected)
        log.warning("%s: %d entries skipped: %s", input_root, len(rejected), listed)
    stats = {src: _size_and_mtime(input_root / src) for src, _ in jobs}
    rows = [earlier[src].row for src, out in jobs if _is_done(earlier, src, out, stats[src], input_root, output_root)]
    done = {row["source"] for row in rows}
    digests = {src: earlier[src].digest for src in done if earlier[src].digest is not None}
    todo = [(src, out) for src, out in jobs if src not in done]
    rows += [empty_row(source, "unreadable", reason) for source, reason in rejected]
    counts = Counter(
        bad_name=sum(reason == NOT_UTF8_FILE for _, reason in rejected),
        resumed=len(done),
        renamed=sum(Path(out).stem != Path(src).stem for src, out in jobs),
        cleaned=_remove_stale_temporaries(output_root, table, jobs),
    )
    if rows:
        advance(len(rows))
    keep_freed_memory()
    detector = shared_detector(
        options.resolved_device(), options.min_face_size, options.thresholds, options.factor, options.batch_pixels
    )
    last_flush = time.monotonic()

    def save_table() -> None:
        """The rows so far, with their sources' stats and digests."""
        stats_now, digests_now = _of_rows(rows, stats), _of_rows(rows, digests)
        write_table(table, rows, options.output_options(), stats_now, identities, digests_now)

    # torch on one core in this thread: parallelism comes from shards (threads or processes), and
    # intra-op threads on MTCNN's small layers cost more than they bring on a busy CPU.
    with ONE_TORCH_THREAD, ThreadPoolExecutor(max_workers=2) as pool:
        batch: list[tuple[str, str, np.ndarray]] = []
        batch_pixels = 0
        decoded = _decoded([(input_root / src, src) for src, _ in todo], options, pool)
        for (src, out), (img, digest) in zip(todo, decoded, strict=True):
            if digest is not None:
                digests[src] = digest
            if isinstance(img, str):
                rows.append(empty_row(src, "unreadable", img))
                advance(1)
                continue
            if too_small(*img.shape[:2], options.min_face_size):
                row = empty_row(src, "too_small", f"smaller than the minimum face size ({options.min_face_size} px)")
                row.update(width=img.shape[1], height=img.shape[0], n_faces=0)
                rows.append(row)
                advance(1)
                continue
            pixels = img.shape[0] * img.shape[1]
            if not fits_batch(len(batch), batch_pixels, pixels, options.batch_size, options.batch_pixels):
                rows += _crop_batch(batch, detector, output_root, options, pool)
                advance(len(batch))
                batch, batch_pixels = [], 0
            batch.append((src, out, img))
            batch_pixels += pixels
            if time.monotonic() - last_flush > FLUSH_SECONDS:
                save_table()
                last_flush = time.monotonic()
        if batch:
            rows += _crop_batch(batch, detector, output_root, options, pool)
            advance(len(batch))
    save_table()
    counts["removed"] = _remove_outdated_outputs(output_root, earlier, jobs, rows)
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
        row, kept = _face_row(src, out, img, faces, options.margin)
        if kept is not None:
            saves.append(pool.submit(_save_png, img, *kept, output_root / out, options))
        rows.append(row)
    for future in saves:
        future.result()
    return rows
