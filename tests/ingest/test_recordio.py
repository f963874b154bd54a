"""RecordIO: round trip through the writer, multi-part records, corrupt records, unpacking to folders."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from facenet_core.ingest import recordio_unpack
from facenet_core.ingest.recordio import (
    MAGIC_BYTES,
    IRHeader,
    RecordIOReader,
    RecordIOWriter,
    pack_record,
    read_index,
    unpack_record,
)
from facenet_core.ingest.recordio_unpack import iter_images, unpack_recordio


def jpeg(value: int) -> bytes:
    pixels = np.full((4, 4, 3), value, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_pack(folder: Path, labels: list[int], array_labels: bool = False) -> tuple[Path, list[bytes]]:
    """An insightface-style pack: header record, one image record per label, identity records."""
    rec, idx = folder / "train.rec", folder / "train.idx"
    images = [jpeg(10 * i) for i in range(len(labels))]
    identities = sorted(set(labels))
    with RecordIOWriter(rec, idx) as writer:
        first_identity = len(labels) + 1
        header = IRHeader(2, np.array([first_identity, first_identity + len(identities)], np.float32), 0, 0)
        writer.write(pack_record(header), key=0)
        for key, (label, image) in enumerate(zip(labels, images, strict=True), start=1):
            value = np.array([label, 0.5], np.float32) if array_labels else float(label)
            writer.write(pack_record(IRHeader(0, value, key, 0), image), key=key)
        for number, label in enumerate(identities):
            rows = [key for key, lab in enumerate(labels, start=1) if lab == label]
            span = np.array([rows[0], rows[-1] + 1], np.float32)
            writer.write(pack_record(IRHeader(2, span, 0, 0)), key=first_identity + number)
    return rec, images


def test_header_pack_unpack_round_trip() -> None:
    scalar, body = unpack_record(pack_record(IRHeader(0, 7.0, 42, 3), b"jpeg"))
    assert (scalar.flag, scalar.label, scalar.id, scalar.id2, body) == (0, 7.0, 42, 3, b"jpeg")
    arrayed, body = unpack_record(pack_record(IRHeader(3, np.array([1, 2, 3], np.float32), 5, 0), b"xy"))
    assert arrayed.flag == 3 and arrayed.label.tolist() == [1.0, 2.0, 3.0] and body == b"xy"
    assert struct.calcsize("<IfQQ") == 24
    with pytest.raises(ValueError, match="shorter than an IRHeader"):
        unpack_record(b"short")


def test_round_trip_with_multi_part_record_and_idx(tmp_path: Path) -> None:
    tricky = b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"ij"  # magic at aligned offsets 4 and 12
    unaligned = b"a" + MAGIC_BYTES + b"bcd"  # magic at offset 1: not a split point
    payloads = [b"first", tricky, b"", unaligned, bytes(range(256))]
    rec, idx = tmp_path / "t.rec", tmp_path / "t.idx"
    with RecordIOWriter(rec, idx) as writer:
        offsets = [writer.write(data, key=key) for key, data in enumerate(payloads)]
    raw = rec.read_bytes()
    flags = [struct.unpack_from("<I", raw, at + 4)[0] >> 29 for at in (offsets[1], offsets[1] + 12)]
    assert flags == [1, 2]  # the tricky record really is stored in three parts
    assert len(raw) % 4 == 0
    with RecordIOReader(rec, idx) as reader:
        assert [data for _, data in reader.records()] == payloads
        assert [at for at, _ in reader.records()] == offsets
        assert reader.read_key(1) == tricky
        assert reader.read_at(offsets[4]) == bytes(range(256))
    keys, found = read_index(idx)
    assert keys.tolist() == [0, 1, 2, 3, 4] and found.tolist() == offsets


def test_corrupt_and_truncated_records_are_reported_and_skipped(tmp_path: Path) -> None:
    rec = tmp_path / "t.rec"
    with RecordIOWriter(rec) as writer:
        offsets = [writer.write(bytes([n]) * 40) for n in range(4)]
    raw = bytearray(rec.read_bytes())
    raw[offsets[1] : offsets[1] + 4] = b"\0\0\0\0"  # record 1 loses its magic
    raw = raw[: offsets[3] + 20]  # record 3 cut short
    rec.write_bytes(bytes(raw))
    errors: list[tuple[int, str]] = []
    with RecordIOReader(rec) as reader:
        records = list(reader.records(on_error=lambda at, msg: errors.append((at, msg))))
        assert [data[0] for _, data in records] == [0, 2]
        with pytest.raises(ValueError, match=f"offset {offsets[1]}"):
            reader.read_at(offsets[1])
    assert errors == [(offsets[1], "bad magic"), (offsets[3], "record length past the end of file (truncated)")]


def test_orphan_continuation_part_is_skipped(tmp_path: Path) -> None:
    rec = tmp_path / "t.rec"
    with RecordIOWriter(rec) as writer:
        writer.write(b"whole")
        middle = writer.write(b"abcd" + MAGIC_BYTES + b"efgh")
        writer.write(b"after")
    raw = bytearray(rec.read_bytes())
    raw[middle : middle + 12] = b"\0" * 12  # the first part (8-byte head + 4 bytes) is wiped out
    rec.write_bytes(bytes(raw))
    errors: list[tuple[int, str]] = []
    with RecordIOReader(rec) as reader:
        datas = [data for _, data in reader.records(on_error=lambda at, msg: errors.append((at, msg)))]
    assert datas == [b"whole", b"after"]
    assert [msg for _, msg in errors] == ["bad magic", "continuation part without a first part"]


@pytest.mark.parametrize("array_labels", [False, True])
def test_unpack_insightface_pack_to_identity_folders(tmp_path: Path, array_labels: bool) -> None:
    labels = [0, 0, 1, 2, 2, 2]
    rec, images = write_pack(tmp_path, labels, array_labels)
    out = tmp_path / "images"
    summary = unpack_recordio(rec, out, progress=False)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert written == ["id_0/0_1.jpg", "id_0/0_2.jpg", "id_1/1_3.jpg", "id_2/2_4.jpg", "id_2/2_5.jpg", "id_2/2_6.jpg"]
    assert (out / "id_2/2_5.jpg").read_bytes() == images[4]
    assert summary["images"] == 6 and summary["identities"] == 3 and summary["errors"] == []
    assert json.loads((out / ".unpacked.json").read_text())["images"] == 6


def test_unpack_resumes_from_saved_offset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec, _ = write_pack(tmp_path, [0, 1, 1, 2, 3])
    out = tmp_path / "images"
    real = recordio_unpack.atomic_write_bytes
    calls: list[Path] = []

    def dies_on_fourth_image(path: Path, data: bytes) -> Path:
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(recordio_unpack, "atomic_write_bytes", dies_on_fourth_image)
    with pytest.raises(KeyboardInterrupt):
        unpack_recordio(rec, out, progress=False, checkpoint_every=2)
    assert not (out / ".unpacked.json").exists()
    monkeypatch.setattr(recordio_unpack, "atomic_write_bytes", real)
    resumed: list[int] = []
    original_iter = recordio_unpack.iter_images

    def spy(*args, **kwargs):
        resumed.append(kwargs["start"])
        return original_iter(*args, **kwargs)

    monkeypatch.setattr(recordio_unpack, "iter_images", spy)
    summary = unpack_recordio(rec, out, progress=False, checkpoint_every=2)
    assert resumed[0] > 0  # started from the saved offset, not from the beginning
    assert summary["images"] == 5
    assert len(list(out.rglob("*.jpg"))) == 5
    assert not (out / ".unpack_progress.json").exists()


def test_unpack_skips_corrupt_image_record_and_reports_offset(tmp_path: Path) -> None:
    rec, _ = write_pack(tmp_path, [0, 1, 2])
    keys, offsets = read_index(tmp_path / "train.idx")
    broken = int(offsets[keys.tolist().index(2)])
    raw = bytearray(rec.read_bytes())
    raw[broken : broken + 4] = b"XXXX"
    rec.write_bytes(bytes(raw))
    summary = unpack_recordio(rec, tmp_path / "images", progress=False)
    assert summary["images"] == 2
    assert summary["errors"] == [[broken, "bad magic"]]
    assert sorted(p.name for p in (tmp_path / "images").rglob("*.jpg")) == ["0_1.jpg", "2_3.jpg"]


def test_iter_images_without_idx_uses_record_ordinals(tmp_path: Path) -> None:
    rec, images = write_pack(tmp_path, [5, 7])
    (tmp_path / "train.idx").unlink()
    found = [(record.label, record.key, record.data) for record in iter_images(rec)]
    assert found == [(5, 1, images[0]), (7, 2, images[1])]


@pytest.mark.parametrize(
    "label, reason",
    [
        (float("nan"), "label nan is not a finite number"),
        (float("-inf"), "label -inf is not a finite number"),
        (-3.0, "label -3 is negative"),
        (2.5, "label 2.5 is not a whole number"),
        (1e30, "label 1e+30 is not below 16777216 (float32 labels are exact only below it)"),
        (0.0, None),
        (16777215.0, None),
    ],
)
def test_label_problem(label: float, reason: str | None) -> None:
    assert recordio_unpack.label_problem(label) == reason


def test_unpack_records_bad_labels_in_the_rejects_table(tmp_path: Path) -> None:
    rec, _ = write_pack(tmp_path, [0, 1])
    with RecordIOWriter(tmp_path / "bad.rec") as writer:
        writer.write(pack_record(IRHeader(0, float("nan"), 9, 0), jpeg(1)))
    rec.write_bytes(rec.read_bytes() + (tmp_path / "bad.rec").read_bytes())
    nan_offset = rec.stat().st_size - (tmp_path / "bad.rec").stat().st_size
    summary = unpack_recordio(rec, tmp_path / "images", progress=False)
    assert summary["images"] == 2 and summary["errors"] == [[nan_offset, "label nan is not a finite number"]]
    table = pq.read_table(tmp_path / "images" / ".unpack_rejects.parquet")
    assert table.to_pylist() == [{"offset": nan_offset, "reason": "label nan is not a finite number"}]
    assert sorted(p.name for p in (tmp_path / "images").iterdir() if p.is_dir()) == ["id_0", "id_1"]


def test_a_file_with_no_image_record_is_refused(tmp_path: Path) -> None:
    rec = tmp_path / "empty.rec"
    with RecordIOWriter(rec) as writer:
        writer.write(pack_record(IRHeader(2, np.array([1, 2], np.float32), 0, 0)))  # a header, no image
    with pytest.raises(ValueError, match=rf"{rec} holds no valid image record \(no image record\)"):
        unpack_recordio(rec, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
