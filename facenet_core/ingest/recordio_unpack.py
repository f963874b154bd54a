"""insightface-style RecordIO packs (glint360k, MS1M, CASIA repacks) into identity folders.

Such a pack starts with a header record (flag > 0, labels = [first identity record, end]) and ends
with one record per identity (labels = its image range); both carry no image and are skipped.
Every image record becomes `id_<label>/<label>_<key>.<ext>`, its key taken from the .idx (the
record's ordinal without one). A label must be a whole number in 0..2**24-1 (float32, the label's
type, holds every integer below 2**24 exactly; above it two identities could share a label); a
record with another label (NaN, inf, -3, 1.5, 1e30), a corrupt record or a payload that is no image
is skipped and listed with its byte offset and reason in `.unpack_rejects.parquet`. A file with no
valid image record is refused. Unpacking is resumable: progress (byte offset reached) is saved
every few thousand records (once every earlier file is written) and a marker `.unpacked.json` is
written last. Files are written by a few threads: creating millions of small files is bound by
system calls, not by parsing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path, atomic_write_bytes, atomic_write_json
from facenet_core.ingest.recordio import RecordIOReader, read_index, unpack_record
from facenet_core.safepath import safe_child

MARKER = ".unpacked.json"
PROGRESS = ".unpack_progress.json"
REJECTS = ".unpack_rejects.parquet"
REJECT_SCHEMA = pa.schema([("offset", pa.int64()), ("reason", pa.string())])
MAX_LABEL = 2**24
IMAGE_SIGNATURES = {b"\xff\xd8\xff": "jpg", b"\x89PNG": "png", b"BM": "bmp"}


class ImageRecord(NamedTuple):
    """One image of a pack: where it starts, its ordinal among all records, label, key, bytes."""

    offset: int
    ordinal: int
    label: int
    key: int
    data: bytes


def image_extension(data: bytes) -> str | None:
    """'jpg', 'png' or 'bmp' from the leading bytes; None when the bytes are no known image."""
    for signature, extension in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return extension
    return None


def label_problem(value: float) -> str | None:
    """Why `value` cannot be an identity label (None when it can): see the module docstring."""
    if not math.isfinite(value):
        return f"label {value} is not a finite number"
    shown = str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    if value < 0:
        return f"label {shown} is negative"
    if not value.is_integer():
        return f"label {shown} is not a whole number"
    if value >= MAX_LABEL:
        return f"label {shown} is not below {MAX_LABEL} (float32 labels are exact only below it)"
    return None


def _source_identity(rec: Path) -> dict:
    info = rec.stat()
    return {"rec": rec.name, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def iter_images(
    rec_path: str | os.PathLike,
    idx_path: str | os.PathLike | None = None,
    *,
    start: int = 0,
    ordinal: int = 0,
    errors: list | None = None,
) -> Iterator[ImageRecord]:
    """Every image record from byte `start` (whose record ordinal is `ordinal`); metadata skipped.

    Corrupt records and records whose label is no identity are appended to `errors` as
    [offset, message] and skipped. The .idx is read at once: a bad one fails before any record.
    """
    keys = offsets = None
    if idx_path is not None and Path(idx_path).is_file():
        keys, offsets = read_index(idx_path)
    return _images(rec_path, keys, offsets, start, ordinal, errors if errors is not None else [])


def _images(
    rec_path: str | os.PathLike,
    keys: np.ndarray | None,
    offsets: np.ndarray | None,
    start: int,
    ordinal: int,
    errors: list,
) -> Iterator[ImageRecord]:
    with RecordIOReader(rec_path) as reader:
        for offset, data in reader.records(start, on_error=lambda at, msg: errors.append([at, msg])):
            key = number = ordinal
            ordinal += 1
            if offsets is not None:
                row = int(np.searchsorted(offsets, offset))
                if row < len(offsets) and offsets[row] == offset:
                    key = int(keys[row])
            try:
                header, image = unpack_record(data)
            except ValueError as error:
                errors.append([offset, str(error)])
                continue
            if not image:
                continue
            label = float(header.label[0] if isinstance(header.label, np.ndarray) else header.label)
            problem = label_problem(label)
            if problem:
                errors.append([offset, problem])
                continue
            yield ImageRecord(offset, number, int(label), key, image)


def _wait(pending: list[Future]) -> None:
    """Block until every submitted write is done (re-raising its error), then forget them."""
    for future in pending:
        future.result()
    pending.clear()


def unpack_recordio(
    rec_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    idx_path: str | os.PathLike | None = None,
    progress: bool = True,
    checkpoint_every: int = 5000,
    workers: int = 8,
) -> dict:
    """Write every image of a .rec into identity folders under `out_dir`; returns the summary.

    `idx_path` defaults to the .idx beside the .rec. Already unpacked (marker matches) -> the
    recorded summary; an interrupted run continues from its last saved offset.
    """
    rec, out = Path(rec_path), Path(out_dir)
    if not rec.is_file():
        raise FileNotFoundError(f"RecordIO file {rec} not found")
    idx = Path(idx_path) if idx_path else rec.with_suffix(".idx")
    source = _source_identity(rec)
    marker = out / MARKER
    if marker.is_file():
        summary = json.loads(marker.read_text())
        if summary.get("source") == source:
            return summary
    state = {"source": source, "offset": 0, "ordinal": 0, "images": 0, "errors": []}
    if (out / PROGRESS).is_file():
        saved = json.loads((out / PROGRESS).read_text())
        if saved.get("source") == source:
            state = saved
    errors = state["errors"]
    images = iter_images(rec, idx, start=state["offset"], ordinal=state["ordinal"], errors=errors)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    made: set[int] = set()
    bar = tqdm(total=rec.stat().st_size, initial=state["offset"], unit="B", unit_scale=True, disable=not progress)
    pending: list[Future] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for count, record in enumerate(images, start=1):
            extension = image_extension(record.data)
            if extension is None:
                errors.append([record.offset, "payload is not a JPEG/PNG/BMP image"])
                continue
            folder = out / f"id_{record.label}"
            if record.label not in made:
                safe_child(out, folder.name, what="RecordIO label folder").mkdir(exist_ok=True)
                made.add(record.label)
            target = folder / f"{record.label}_{record.key}.{extension}"
            pending.append(pool.submit(atomic_write_bytes, target, record.data))
            state["images"] += 1
            bar.update(record.offset - bar.n)
            if count % checkpoint_every == 0:
                _wait(pending)
                # Resuming rereads this record, so the saved count leaves it out.
                saved = {**state, "offset": record.offset, "ordinal": record.ordinal, "images": state["images"] - 1}
                atomic_write_json(out / PROGRESS, saved)
        _wait(pending)
    bar.close()
    errors = [list(error) for error in sorted({tuple(error) for error in errors})]
    if not state["images"]:
        _refuse(rec, out, created, errors)
    identities = sum(1 for entry in out.iterdir() if entry.is_dir())
    rejects = write_rejects(out / REJECTS, errors)
    summary = {
        "source": source,
        "images": state["images"],
        "identities": identities,
        "errors": errors,
        "rejects": str(rejects),
    }
    atomic_write_json(marker, summary)
    (out / PROGRESS).unlink(missing_ok=True)
    return summary


def write_rejects(path: Path, errors: list[list]) -> Path:
    """The rejects table: one row per skipped record, its byte offset and the reason."""
    columns = {"offset": [int(offset) for offset, _ in errors], "reason": [str(reason) for _, reason in errors]}
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pydict(columns, schema=REJECT_SCHEMA), tmp)
    return path


def _refuse(rec: Path, out: Path, created: bool, errors: list[list]) -> None:
    """No image came out of `rec`: leave `out` as it was (removed when this call made it) and say why."""
    (out / PROGRESS).unlink(missing_ok=True)
    if created and not any(out.iterdir()):
        out.rmdir()
    shown = "; ".join(f"offset {offset}: {reason}" for offset, reason in errors[:3])
    rejected = f"{len(errors)} rejected: {shown}{'; ...' if len(errors) > 3 else ''}" if errors else "no image record"
    raise UserError(f"RecordIO file {rec} holds no valid image record ({rejected}): give an MXNet .rec image pack")
