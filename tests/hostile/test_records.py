"""Bad records inside a dataset are skipped and recorded, never fatal: RecordIO records whose label is
no identity (NaN, inf, negative, huge, fractional), corrupt or non-image records; symlink loops in
the identity folders a manifest scans. A file with no valid record at all is refused."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.cli import invoke
from support.tree_state import tree_state

from facenet_core.ingest.recordio import IRHeader, RecordIOWriter, pack_record

pytestmark = pytest.mark.timeout(120)


def jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, value, value)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_rec(path: Path, labels: list) -> list[int]:
    """One image record per label (a float, or an array of float32 labels); returns their offsets."""
    with RecordIOWriter(path, path.with_suffix(".idx")) as writer:
        offsets = []
        for key, label in enumerate(labels, start=1):
            header = IRHeader(0, np.asarray(label, np.float32), key, 0) if isinstance(label, list) else None
            header = header or IRHeader(0, float(label), key, 0)
            offsets.append(writer.write(pack_record(header, jpeg(10 * key)), key=key))
    return offsets


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    root = tmp_path / "area"
    root.mkdir()
    return {"root": root, "sibling": sibling}


run_cli = invoke


def test_records_with_bad_labels_are_skipped_with_offset_and_reason(area, capsys) -> None:
    rec = area["root"] / "train.rec"
    labels = [0, math.nan, math.inf, -3, 1e30, 1.5, 1, [math.nan, 0.0], [1.0, 7.0], 2**24]
    offsets = write_rec(rec, labels)
    with RecordIOWriter(area["root"] / "other.rec") as writer:
        writer.write(pack_record(IRHeader(0, 4.0, 1, 0), b"not an image at all"))
    raw = rec.read_bytes() + (area["root"] / "other.rec").read_bytes()
    rec.write_bytes(raw)
    not_image = len(raw) - len((area["root"] / "other.rec").read_bytes())
    sibling = tree_state(area["sibling"])
    out = area["root"] / "images"

    code, printed, err = run_cli(["download", "--unpack_recordio", str(rec), "--dest", str(out), "--quiet"], capsys)

    assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "id_0/0_1.jpg",
        "id_1/1_7.jpg",
        "id_1/1_9.jpg",
    ]
    assert sorted(entry.name for entry in out.iterdir()) == [
        ".unpack_rejects.parquet",
        ".unpacked.json",
        "id_0",
        "id_1",
    ]
    rejects = pq.read_table(out / ".unpack_rejects.parquet").to_pylist()
    assert rejects == [
        {"offset": offsets[1], "reason": "label nan is not a finite number"},
        {"offset": offsets[2], "reason": "label inf is not a finite number"},
        {"offset": offsets[3], "reason": "label -3 is negative"},
        {"offset": offsets[4], "reason": "label 1e+30 is not below 16777216 (float32 labels are exact only below it)"},
        {"offset": offsets[5], "reason": "label 1.5 is not a whole number"},
        {"offset": offsets[7], "reason": "label nan is not a finite number"},
        {
            "offset": offsets[9],
            "reason": "label 16777216 is not below 16777216 (float32 labels are exact only below it)",
        },
        {"offset": not_image, "reason": "payload is not a JPEG/PNG/BMP image"},
    ]
    summary = json.loads(printed)
    assert summary["images"] == 3 and summary["identities"] == 2 and len(summary["errors"]) == 8
    assert summary["rejects"] == str(out / ".unpack_rejects.parquet")
    assert tree_state(area["sibling"]) == sibling


def test_random_bytes_are_refused_and_leave_nothing(area, capsys) -> None:
    rec = area["root"] / "random.rec"
    rec.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = area["root"] / "images"
    before = tree_state(area["root"].parent)
    code, _, err = run_cli(["download", "--unpack_recordio", str(rec), "--dest", str(out), "--quiet"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0] == (
        f"facenet download: error: RecordIO file {rec} holds no valid image record (1 rejected: offset 0: "
        "bad magic): give an MXNet .rec image pack"
    )
    assert tree_state(area["root"].parent) == before and not out.exists()


def test_a_pack_of_only_bad_labels_is_refused_and_the_user_folder_kept(area, capsys) -> None:
    rec = area["root"] / "nan.rec"
    offsets = write_rec(rec, [math.nan, -1])
    out = area["root"] / "mine"
    out.mkdir()
    before = tree_state(area["root"].parent)
    code, _, err = run_cli(["download", "--unpack_recordio", str(rec), "--dest", str(out), "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{rec} holds no valid image record (2 rejected: offset {offsets[0]}: label nan" in err
    assert f"offset {offsets[1]}: label -1 is negative" in err
    assert tree_state(area["root"].parent) == before and out.is_dir()


def test_an_index_that_is_not_one_is_named(area, capsys) -> None:
    rec = area["root"] / "train.rec"
    write_rec(rec, [0, 1])
    idx = rec.with_suffix(".idx")
    idx.write_text("1\tzero\n")
    code, _, err = run_cli(["download", "--unpack_recordio", str(rec), "--dest", str(area["root"] / "o")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"RecordIO index {idx} is not 'key<TAB>offset' lines of integers" in err


def test_symlink_loops_become_manifest_rejects(area, capsys) -> None:
    root = area["root"] / "people"
    for person in ("ann", "bob"):
        (root / person).mkdir(parents=True)
        Image.new("RGB", (8, 8), "blue").save(root / person / f"{person}_0001.jpg")
    (root / "ann" / "self.jpg").symlink_to("self.jpg")
    (root / "ann" / "a.png").symlink_to("b.png")
    (root / "ann" / "b.png").symlink_to("a.png")
    (root / "carl").symlink_to("carl")  # an identity folder that is a loop
    out = area["root"] / "manifest.parquet"
    before = tree_state(root), tree_state(area["sibling"])

    code, printed, err = run_cli(["manifest", str(root), "--out", str(out), "--no_progress", "--workers", "1"], capsys)

    assert code == 0, err
    loop = "symlink loop: too many levels of symbolic links"
    rejects = pq.read_table(out.with_name("manifest.rejects.parquet")).to_pylist()
    assert rejects == [
        {"path": "ann/a.png", "reason": loop},
        {"path": "ann/b.png", "reason": loop},
        {"path": "ann/self.jpg", "reason": loop},
        {"path": "carl/", "reason": loop},
    ]
    summary = json.loads(printed)
    assert summary["num_images"] == 2 and summary["num_rejected"] == 4
    assert summary["rejected_by_reason"] == {"symlink loop": 4} and summary["empty_identities"] == 0
    assert pq.read_table(out).column("path").to_pylist() == ["ann/ann_0001.jpg", "bob/bob_0001.jpg"]
    assert (tree_state(root), tree_state(area["sibling"])) == before
