"""MXNet RecordIO (.rec/.idx) read and written in pure Python and numpy, no MXNet needed.

Format (dmlc-core): each part starts with the magic 0xced7230a and a length word whose upper three
bits are a continuation flag (0 whole record, 1 first, 2 middle, 3 last part) and whose lower 29
bits are the payload length; the payload is padded to a multiple of 4 bytes. The writer splits a
record wherever the magic occurs at a 4-aligned offset of its payload and drops it there, so a
reader joins parts with the magic between them, and the magic never appears aligned inside data:
after a corrupt stretch the next aligned magic is the start of a record. A record's payload is an
IRHeader ('IfQQ': flag, label, id, id2; flag > 0 means that many float32 labels follow) and then
the image bytes. The .idx file is text, one "key<TAB>offset" line per record.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_write_text

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)
SCAN_CHUNK = 1 << 20

log = logging.getLogger(__name__)

ErrorHandler = Callable[[int, str], None]


@dataclass(frozen=True)
class IRHeader:
    """Image record header: `label` is a float, or a float32 array when `flag` > 0."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def unpack_record(data: bytes) -> tuple[IRHeader, bytes]:
    """Split a record into its IRHeader and the image bytes after it."""
    if len(data) < IR_SIZE:
        raise ValueError(f"record of {len(data)} bytes is shorter than an IRHeader ({IR_SIZE})")
    flag, label, ident, ident2 = struct.unpack_from(IR_FORMAT, data)
    body = data[IR_SIZE:]
    if flag > 0:
        if len(body) < 4 * flag:
            raise ValueError(f"record announces {flag} labels but holds {len(body)} bytes after its header")
        label = np.frombuffer(body, dtype="<f4", count=flag).copy()
        body = body[4 * flag :]
    return IRHeader(flag, label, ident, ident2), body


def pack_record(header: IRHeader, payload: bytes = b"") -> bytes:
    """The inverse of unpack_record: header (plus label array when flag > 0) and payload."""
    if isinstance(header.label, np.ndarray):
        labels = np.asarray(header.label, dtype="<f4")
        head = struct.pack(IR_FORMAT, labels.size, 0.0, header.id, header.id2) + labels.tobytes()
    else:
        head = struct.pack(IR_FORMAT, 0, float(header.label), header.id, header.id2)
    return head + payload


def read_index(idx_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Keys and byte offsets (int64 arrays) of a .idx file, sorted by offset."""
    try:
        table = np.loadtxt(idx_path, dtype=np.int64, delimiter="\t", ndmin=2)
    except ValueError as error:
        raise UserError(
            f"RecordIO index {idx_path} is not 'key<TAB>offset' lines of integers ({error}): "
            "delete it to unpack without it (keys then become record ordinals)"
        ) from None
    if table.size and table.shape[1] != 2:
        raise UserError(f"RecordIO index {idx_path} has {table.shape[1]} columns per line, not 'key<TAB>offset'")
    if table.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(table[:, 1], kind="stable")
    return table[order, 0], table[order, 1]


def _warn(offset: int, message: str) -> None:
    log.warning("recordio: %s at byte offset %d; skipped", message, offset)


class RecordIOReader:
    """Streams or randomly reads the records of a .rec file; corrupt records are reported and skipped."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.path = Path(rec_path)
        self.size = self.path.stat().st_size
        self._handle = open(self.path, "rb", buffering=SCAN_CHUNK)
        self._index: dict[int, int] | None = None
        self.idx_path = Path(idx_path) if idx_path else None

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordIOReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _resync(self, start: int) -> int | None:
        """The next 4-aligned offset >= start holding the magic, or None at end of file."""
        position = (start + 3) & ~3
        self._handle.seek(position)
        while True:
            chunk = self._handle.read(SCAN_CHUNK)
            if len(chunk) < 4:
                return None
            found = chunk.find(MAGIC_BYTES)
            while found != -1 and found % 4:
                found = chunk.find(MAGIC_BYTES, found + 1)
            if found != -1:
                return position + found
            position += len(chunk) - len(chunk) % 4
            self._handle.seek(position)

    def records(self, start: int = 0, on_error: ErrorHandler = _warn) -> Iterator[tuple[int, bytes]]:
        """(offset, payload) of every whole record from byte `start`, parts joined, in file order."""
        position: int | None = start
        pending: list[bytes] = []
        pending_start = 0
        while position is not None:
            self._handle.seek(position)
            head = self._handle.read(8)
            if not head:
                break
            if len(head) < 8:
                on_error(position, "truncated record header")
                break
            magic, word = struct.unpack("<II", head)
            length, flag = word & LENGTH_MASK, word >> 29
            padded = (length + 3) & ~3
            if magic != MAGIC or flag > 3 or position + 8 + padded > self.size:
                reason = "bad magic" if magic != MAGIC else "record length past the end of file (truncated)"
                on_error(position, reason)
                position = self._resync(position + 4)
                continue
            data = self._handle.read(padded)[:length]
            current, position = position, position + 8 + padded
            if flag in (0, 1) and pending:
                on_error(pending_start, "multi-part record without its last part")
                pending = []
            if flag == 0:
                yield current, data
            elif flag == 1:
                pending, pending_start = [data], current
            elif not pending:
                on_error(current, "continuation part without a first part")
            elif flag == 2:
                pending.append(data)
            else:
                pending.append(data)
                yield pending_start, MAGIC_BYTES.join(pending)
                pending = []
        if pending:
            on_error(pending_start, "multi-part record cut off at end of file")

    def read_at(self, offset: int) -> bytes:
        """The record starting at `offset` (parts joined); ValueError when it is corrupt."""
        errors: list[str] = []
        for found, data in self.records(offset, on_error=lambda at, msg: errors.append(f"{msg} at offset {at}")):
            if errors or found != offset:
                break
            return data
        raise ValueError(f"{self.path}: no valid record at offset {offset} ({'; '.join(errors) or 'end of file'})")

    def read_key(self, key: int) -> bytes:
        """The record stored under `key` in the .idx file."""
        if self._index is None:
            if self.idx_path is None:
                raise ValueError(f"{self.path}: random access by key needs the .idx file")
            keys, offsets = read_index(self.idx_path)
            self._index = dict(zip(keys.tolist(), offsets.tolist(), strict=True))
        if key not in self._index:
            raise KeyError(f"key {key} is not in {self.idx_path}")
        return self.read_at(self._index[key])


class RecordIOWriter:
    """Writes a .rec (and optionally its .idx) the way MXNet does; files appear when closed."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path else None
        self._rec_tmp = self.rec_path.with_name(f".{self.rec_path.name}.writing")
        self._rec = open(self._rec_tmp, "wb")
        self._idx_lines: list[str] = []

    def _part(self, flag: int, data: bytes) -> None:
        self._rec.write(MAGIC_BYTES + struct.pack("<I", (flag << 29) | len(data)) + data)
        self._rec.write(b"\0" * (-len(data) % 4))

    def write(self, data: bytes, key: int | None = None) -> int:
        """Append one record (split at aligned magics); returns its offset."""
        offset = self._rec.tell()
        cuts = [i for i in range(0, len(data) - 3, 4) if data[i : i + 4] == MAGIC_BYTES]
        begin = 0
        for number, cut in enumerate(cuts):
            self._part(1 if number == 0 else 2, data[begin:cut])
            begin = cut + 4
        self._part(3 if cuts else 0, data[begin:])
        if key is not None:
            self._idx_lines.append(f"{key}\t{offset}\n")
        return offset

    def close(self) -> None:
        """Flush and move the files to their final names."""
        self._rec.close()
        os.replace(self._rec_tmp, self.rec_path)
        if self.idx_path is not None:
            atomic_write_text(self.idx_path, "".join(self._idx_lines))

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._rec.close()
            self._rec_tmp.unlink(missing_ok=True)
