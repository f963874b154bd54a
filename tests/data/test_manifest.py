"""Manifest: schema, order, labels, rejects, identities filter, duplicates, fingerprint, reader, CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facenet_core.data.manifest import (
    build_manifest,
    manifest_fingerprint,
    read_manifest,
    read_manifest_labels,
    sidecar_paths,
)
from flows.cli import main as facenet

from .conftest import write_image


@pytest.fixture
def messy_root(image_tree, tmp_path):
    """Identities out of order, dotted stems, a corrupt, a truncated and a non-image file, an empty folder."""
    root = image_tree({"zoe": 2, "adam": 3, "mia lee": 1})
    write_image(root / "adam" / "adam.v2.final.jpg", value=99)
    (root / "zoe" / "notes.txt").write_text("not an image")
    (root / "zoe" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    good = (root / "mia lee" / "mia lee_0000.png").read_bytes()
    (root / "mia lee" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "empty").mkdir()
    (root / ".shards").mkdir()
    write_image(root / ".shards" / "hidden.png")
    write_image(root / "stray.png")
    return root


def test_schema_order_labels_and_metadata(messy_root, tmp_path):
    out = tmp_path / "m.parquet"
    summary = build_manifest(messy_root, out, workers=1, progress=False)
    table = pq.read_table(out)
    assert [f.name for f in table.schema] == ["path", "identity", "label", "width", "height", "bytes"]
    assert [str(f.type) for f in table.schema] == ["string", "string", "int32", "int32", "int32", "int64"]
    rows = table.to_pylist()
    assert [r["path"] for r in rows] == [
        "adam/adam.v2.final.jpg",
        "adam/adam_0000.png",
        "adam/adam_0001.png",
        "adam/adam_0002.png",
        "mia lee/mia lee_0000.png",
        "zoe/zoe_0000.png",
        "zoe/zoe_0001.png",
    ]
    assert [r["label"] for r in rows] == [0, 0, 0, 0, 1, 2, 2]
    assert {r["identity"] for r in rows if r["label"] == 1} == {"mia lee"}
    assert all(r["width"] == 8 and r["height"] == 6 for r in rows)
    assert rows[1]["bytes"] == (messy_root / rows[1]["path"]).stat().st_size
    metadata = table.schema.metadata
    assert metadata[b"facenet.root"].decode() == str(messy_root.resolve())
    assert metadata[b"facenet.fingerprint"].decode() == summary["fingerprint"] == manifest_fingerprint(out)
    assert summary["num_images"] == 7 and summary["num_identities"] == 3
    assert summary["empty_identities"] == ["empty"]
    assert summary["num_ignored_files"] == 1


def test_rejects_and_summary_files(messy_root, tmp_path):
    out = tmp_path / "m.parquet"
    build_manifest(messy_root, out, workers=1, progress=False)
    rejects_path, summary_path = sidecar_paths(out)
    table = pq.read_table(rejects_path).to_pydict()
    rejects = dict(zip(table["path"], table["reason"], strict=True))
    assert set(rejects) == {"zoe/broken.jpg", "mia lee/cut.png", "empty/"}
    assert rejects["zoe/broken.jpg"].startswith("unreadable")
    assert rejects["empty/"].startswith("empty identity folder")
    summary = json.loads(summary_path.read_text())
    assert summary["num_rejected"] == 2 and summary["rejected_by_reason"]["unreadable"] == 2


def test_fast_mode_reads_headers_only(messy_root, tmp_path):
    summary = build_manifest(messy_root, tmp_path / "f.parquet", validate=False, workers=1, progress=False)
    paths = pq.read_table(tmp_path / "f.parquet", columns=["path"]).column("path").to_pylist()
    assert "mia lee/cut.png" in paths  # header intact: only a full decode finds the truncation
    assert "zoe/broken.jpg" not in paths
    assert summary["num_images"] == 8


def test_identities_file_restricts_and_reports_missing(messy_root, tmp_path):
    listed = tmp_path / "people.txt"
    listed.write_text("# wanted\nzoe\nmia lee\n\nnobody\n")
    summary = build_manifest(messy_root, tmp_path / "m.parquet", identities_file=listed, workers=1, progress=False)
    manifest = read_manifest(tmp_path / "m.parquet")
    assert manifest.identities == ["mia lee", "zoe"]
    assert summary["missing_identities"] == ["nobody"]
    with pytest.raises(FileNotFoundError, match="identities file"):
        build_manifest(messy_root, tmp_path / "x.parquet", identities_file=tmp_path / "absent.txt", progress=False)


def test_dedupe_keeps_the_first_copy_in_sorted_order(image_tree, tmp_path):
    root = image_tree({"a": 2, "b": 2})
    shutil.copy(root / "b" / "b_0001.png", root / "a" / "z_copy.png")
    shutil.copy(root / "a" / "a_0000.png", root / "a" / "a_0000_again.png")
    out = tmp_path / "m.parquet"
    summary = build_manifest(root, out, dedupe=True, workers=1, progress=False)
    paths = pq.read_table(out).column("path").to_pylist()
    assert paths == ["a/a_0000.png", "a/a_0001.png", "a/z_copy.png", "b/b_0000.png"]
    rejects = pq.read_table(sidecar_paths(out)[0]).to_pydict()
    assert dict(zip(rejects["path"], rejects["reason"], strict=True)) == {
        "a/a_0000_again.png": "duplicate of a/a_0000.png",
        "b/b_0001.png": "duplicate of a/z_copy.png",
    }
    assert summary["num_duplicates"] == 2
    without = build_manifest(root, tmp_path / "n.parquet", workers=1, progress=False)
    assert without["num_images"] == 6


def test_reader_arrays_and_paths(messy_root, tmp_path):
    out = tmp_path / "m.parquet"
    build_manifest(messy_root, out, workers=2, progress=False)
    manifest = read_manifest(out)
    assert manifest.labels.dtype == np.int32 and manifest.labels.tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert manifest.offsets.tolist() == [0, 4, 5, 7]
    assert manifest.identities == ["adam", "mia lee", "zoe"]
    assert manifest.num_images == 7
    assert manifest.path(0) == "adam/adam.v2.final.jpg"
    assert manifest.abspath(4) == messy_root.resolve() / "mia lee" / "mia lee_0000.png"
    assert manifest.abspath(4).is_file()


def test_fingerprint_follows_content_not_location(image_tree, tmp_path):
    root = image_tree({"a": 2, "b": 1})
    first = build_manifest(root, tmp_path / "1.parquet", workers=1, progress=False)["fingerprint"]
    moved = shutil.copytree(root, tmp_path / "elsewhere")
    assert build_manifest(moved, tmp_path / "2.parquet", workers=1, progress=False)["fingerprint"] == first
    write_image(moved / "b" / "b_0001.png", value=50)
    assert build_manifest(moved, tmp_path / "3.parquet", workers=1, progress=False)["fingerprint"] != first


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder of identity folders"):
        build_manifest(tmp_path / "absent", tmp_path / "m.parquet", progress=False)
    (tmp_path / "root" / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match="no usable image"):
        build_manifest(tmp_path / "root", tmp_path / "m.parquet", progress=False)
    with pytest.raises(FileNotFoundError, match="facenet manifest"):
        read_manifest(tmp_path / "absent.parquet")


def test_label_reader_equals_the_full_readers_labels_and_fingerprint(image_tree, tmp_path):
    root = image_tree({"ann": 3, "bob": 1, "cid": 4})
    build_manifest(root, tmp_path / "m.parquet", workers=1, progress=False)
    full, labels = read_manifest(tmp_path / "m.parquet"), read_manifest_labels(tmp_path / "m.parquet")
    assert labels.fingerprint == full.fingerprint == manifest_fingerprint(tmp_path / "m.parquet")
    assert labels.labels.dtype == np.int32 and np.array_equal(labels.labels, full.labels)
    assert labels.num_images == full.num_images == 8
    pq.write_table(pq.read_table(tmp_path / "m.parquet"), tmp_path / "groups.parquet", row_group_size=3)
    assert pq.ParquetFile(tmp_path / "groups.parquet").metadata.num_row_groups == 3
    assert np.array_equal(read_manifest_labels(tmp_path / "groups.parquet").labels, full.labels)
    with pytest.raises(FileNotFoundError, match="facenet manifest"):
        read_manifest_labels(tmp_path / "absent.parquet")


def test_cli_manifest_then_triplets(image_tree, tmp_path, capsys):
    root = image_tree({"a": 2, "b": 2, "c": 1})
    out = tmp_path / "m.parquet"
    assert facenet(["manifest", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 5
    npy = tmp_path / "epoch_3.npy"
    args = ["triplets", "--manifest", str(out), "--epoch", "3", "--out", str(npy), "--batch-size", "6"]
    assert facenet([*args, "--iterations_per_epoch", "2", "--num_human_identities_per_batch", "3"]) == 0
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert meta["manifest_fingerprint"] == manifest_fingerprint(out)
    assert (meta["epoch"], meta["batch_size"], meta["iterations_per_epoch"]) == (3, 6, 2)
    assert np.load(npy).shape == (12, 3)
    assert facenet([*args, "--num_human_identities_per_batch", "4"]) == 2
    assert "exceeds the 3 identities" in capsys.readouterr().err

    pk = tmp_path / "pk.npy"
    args = ["triplets", "--manifest", str(out), "--epoch", "1", "--out", str(pk), "--sampling", "pk"]
    assert facenet([*args, "--pk_identities", "2", "--pk_images", "3", "--iterations_per_epoch", "4"]) == 0
    assert "4 batches of 2 x 3 images from 5 images" in capsys.readouterr().out
    meta = json.loads(pk.with_suffix(".json").read_text())
    assert (meta["format"], meta["epoch"], meta["pk_identities"], meta["pk_images"]) == (
        "facenet-pk-batches-1",
        1,
        2,
        3,
    )
    assert np.load(pk).shape == (4, 6)
    assert facenet([*args, "--pk_identities", "3"]) == 2
    assert "pk_identities=3 exceeds the 2 identities with at least two images" in capsys.readouterr().err


def test_undecodable_names_are_rejected_not_fatal(image_tree, tmp_path):
    root = image_tree({"ok": 2})
    os.mkdir(os.fsencode(root) + b"/bad\xff")
    write_image(Path(os.fsdecode(os.fsencode(root) + b"/bad\xff/a.png")))
    write_image(Path(os.fsdecode(os.fsencode(root) + b"/ok/b\xfe.png")))
    summary = build_manifest(root, tmp_path / "m.parquet", workers=1, progress=False)
    assert summary["num_images"] == 2 and summary["num_rejected"] == 2
    reasons = pq.read_table(sidecar_paths(tmp_path / "m.parquet")[0]).column("reason").to_pylist()
    assert sorted(reasons) == ["file name is not valid UTF-8", "folder name is not valid UTF-8"]


def test_identities_file_in_lfw_people_format(tmp_path):
    from facenet_core.data.manifest import read_identities_file

    people = tmp_path / "peopleDevTrain.txt"
    people.write_text("3\nAJ_Cook\t1\nAaron_Eckhart\t2\n2\nZico\t4\n")
    assert read_identities_file(people) == ["AJ_Cook", "Aaron_Eckhart", "Zico"]
    plain = tmp_path / "ids.txt"
    plain.write_text("# chosen\nalice\n\nbob\n")
    assert read_identities_file(plain) == ["alice", "bob"]


def test_symlink_loops_are_rejected_with_their_reason(image_tree, tmp_path):
    root = image_tree({"ok": 2, "loops": 1})
    (root / "loops" / "self.jpg").symlink_to("self.jpg")
    (root / "loops" / "notes").symlink_to("notes")  # not an image name: ignored like any other file
    (root / "circle").symlink_to("circle")
    summary = build_manifest(root, tmp_path / "m.parquet", workers=1, progress=False)
    rejects = pq.read_table(sidecar_paths(tmp_path / "m.parquet")[0]).to_pylist()
    loop = "symlink loop: too many levels of symbolic links"
    assert rejects == [{"path": "circle/", "reason": loop}, {"path": "loops/self.jpg", "reason": loop}]
    assert summary["num_images"] == 3 and summary["empty_identities"] == [] and summary["num_ignored_files"] == 1


def test_identities_file_that_is_not_utf8_is_named(image_tree, tmp_path):
    root = image_tree({"ok": 2})
    listed = tmp_path / "people.txt"
    listed.write_bytes(b"ok\n\xe9mile\n")
    with pytest.raises(ValueError, match=rf"identities file {listed}: line 2 \(byte 3\) is not UTF-8"):
        build_manifest(root, tmp_path / "m.parquet", identities_file=listed, workers=1, progress=False)
