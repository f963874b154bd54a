"""The crop stage end to end on a tiny generated tree: statuses and reasons, crops, names, table, resume
(by source, across regrouped shards), what a rerun removes, the output folder's overlap check and lock."""

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from facenet_core.detect import crop as crop_module
from facenet_core.detect.crop import (
    CropOptions,
    crop_shard,
    merge_detections,
)
from facenet_core.detect.detector import shared_detector
from facenet_core.detect.folder import output_lock
from facenet_core.detect.options import STAGE_VERSION
from facenet_core.detect.parallel import CropPool, crop_tree, run_shard
from facenet_core.detect.shards import list_shards, shard_fingerprint, shard_id
from facenet_core.detect.table import SCHEMA, read_source_records
from facenet_core.errors import UserError
from facenet_core.fileio import sha256_file
from flows.cli import crop as crop_command
from tests.support.tree_state import tree_state

OPTIONS = CropOptions(image_size=40, batch_size=2, workers=1)
COLUMNS = (
    ["source", "output", "status", "x1", "y1", "x2", "y2", "crop_x1", "crop_y1", "crop_x2", "crop_y2", "score"]
    + [f"lm_x{k}" for k in range(1, 6)]
    + [f"lm_y{k}" for k in range(1, 6)]
    + ["n_faces", "width", "height", "reason"]
)


def _rows(output_root):
    return {row["source"]: row for row in pq.read_table(output_root / "detections.parquet").to_pylist()}


def test_tree_statuses_outputs_and_table(tree, tmp_path):
    out = tmp_path / "out"
    summary = crop_tree(tree, out, OPTIONS, shard_size=1)
    assert summary["shards"] == 2
    assert {k: summary[k] for k in ("ok", "no_face", "unreadable", "too_small", "renamed")} == {
        "ok": 3,
        "no_face": 1,
        "unreadable": 1,
        "too_small": 1,
        "renamed": 1,
    }
    assert SCHEMA.names == COLUMNS
    assert pq.read_schema(out / "detections.parquet").names == COLUMNS
    rows = _rows(out)
    assert {src: r["status"] for src, r in rows.items()} == {
        "alice/a.jpg": "ok",
        "alice/a.png": "ok",
        "bob/blank.png": "no_face",
        "bob/broken.jpg": "unreadable",
        "bob/face.png": "ok",
        "bob/tiny.png": "too_small",
    }
    assert rows["alice/a.jpg"]["output"] == "alice/a.png"
    assert rows["alice/a.png"]["output"] == "alice/a.png.png"
    assert rows["bob/blank.png"]["output"] is None and rows["bob/blank.png"]["n_faces"] == 0
    assert (rows["bob/tiny.png"]["width"], rows["bob/tiny.png"]["height"]) == (15, 15)
    assert {src: r["reason"] for src, r in rows.items()} == {
        "alice/a.jpg": None,
        "alice/a.png": None,
        "bob/blank.png": "no face found",
        "bob/broken.jpg": "UnidentifiedImageError: cannot identify image file 'bob/broken.jpg'",
        "bob/face.png": None,
        "bob/tiny.png": "smaller than the minimum face size (20 px)",
    }
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "alice/a.png",
        "alice/a.png.png",
        "bob/face.png",
    ]
    assert not list(out.rglob("*.tmp"))


def test_crop_is_the_bilinear_resize_of_the_clipped_box(tree, tmp_path):
    out = tmp_path / "out"
    crop_shard(tree, out, ["bob"], OPTIONS)
    merge_detections(out)
    row = _rows(out)["bob/face.png"]
    assert row["n_faces"] == 1 and row["score"] > 0.9
    x1, y1, x2, y2 = (row[k] for k in ("crop_x1", "crop_y1", "crop_x2", "crop_y2"))
    assert (x1, y1, x2, y2) == (int(row["x1"]), int(row["y1"]), int(row["x2"]), int(row["y2"]))
    source = np.asarray(Image.open(tree / "bob" / "face.png"))
    expected = np.asarray(Image.fromarray(source[y1:y2, x1:x2]).resize((40, 40), Image.BILINEAR))
    assert np.array_equal(np.asarray(Image.open(out / "bob" / "face.png")), expected)


def test_rerun_skips_finished_images_and_redoes_missing_ones(tree, tmp_path):
    out = tmp_path / "out"
    first = crop_shard(tree, out, ["alice", "bob"], OPTIONS)
    assert first["resumed"] == 0
    kept = out / "bob" / "face.png"
    stamp = kept.stat().st_mtime_ns
    (out / "alice" / "a.png").unlink()
    second = crop_shard(tree, out, ["alice", "bob"], OPTIONS)
    assert second["resumed"] == 5 and second["ok"] == 3
    assert kept.stat().st_mtime_ns == stamp
    assert (out / "alice" / "a.png").is_file()


def test_rerun_redoes_an_image_whose_bytes_changed_under_the_same_size(tree, tmp_path, faces):
    source = tree / "bob" / "face.png"
    Image.fromarray(faces[2]).save(source, compress_level=0)  # stored, not deflated: the size is the pixels'
    out = tmp_path / "out"
    first = crop_shard(tree, out, ["bob"], OPTIONS)
    images = sum(first[status] for status in ("ok", "no_face", "unreadable", "too_small"))
    before = (out / "bob" / "face.png").read_bytes()
    size = source.stat().st_size
    Image.fromarray(faces[3]).save(source, compress_level=0)
    assert source.stat().st_size == size
    later = source.stat().st_mtime_ns + 10**9
    os.utime(source, ns=(later, later))
    again = crop_shard(tree, out, ["bob"], OPTIONS)
    assert (again["resumed"], again["ok"]) == (images - 1, first["ok"])
    assert (out / "bob" / "face.png").read_bytes() != before


def _touch_every_file(root, seconds_later):
    """New modification times, the same bytes: a tree copied or restored without its timestamps."""
    for path in root.rglob("*"):
        if path.is_file():
            stamp = path.stat().st_mtime_ns + seconds_later * 10**9
            os.utime(path, ns=(stamp, stamp))


def test_a_tree_with_new_timestamps_and_the_same_bytes_is_not_cropped_again(tree, tmp_path):
    out = tmp_path / "out"
    first = crop_tree(tree, out, OPTIONS, shard_size=2)
    pngs, detections = _pngs(out), sha256_file(out / "detections.parquet")
    _touch_every_file(tree, 100)
    again = crop_tree(tree, out, OPTIONS, shard_size=2)
    decoded = sum(first[status] for status in ("ok", "no_face", "too_small"))
    # Only the unreadable file is tried again: no digest is kept for what is no image.
    assert (again["resumed"], again["unreadable"]) == (decoded, first["unreadable"]) and _pngs(out) == pngs
    assert sha256_file(out / "detections.parquet") == detections  # the crops' fingerprint: later stages stay cached
    stats, digests = read_source_records(next((out / ".shards").glob("*.parquet")))
    face = tree / "bob" / "face.png"
    assert stats["bob/face.png"] == [face.stat().st_size, face.stat().st_mtime_ns]
    assert digests["bob/face.png"] == sha256_file(face) and len(digests) == decoded


def test_tables_without_digests_crop_touched_sources_again(tree, tmp_path):
    out = tmp_path / "out"
    first = crop_shard(tree, out, ["alice"], OPTIONS)
    table = out / ".shards" / f"{shard_id(['alice'])}.parquet"
    old = pq.read_table(table)
    metadata = {k: v for k, v in old.schema.metadata.items() if k != b"facenet.source_digests"}
    pq.write_table(old.replace_schema_metadata(metadata), table)
    _touch_every_file(tree, 100)
    again = crop_shard(tree, out, ["alice"], OPTIONS)
    assert (again["resumed"], again["ok"]) == (0, first["ok"])


def test_rerun_redoes_a_source_replaced_with_an_older_timestamp(tree, tmp_path, faces):
    out = tmp_path / "out"
    crop_shard(tree, out, ["alice"], OPTIONS)
    before = (out / "alice" / "a.png").read_bytes()
    source = tree / "alice" / "a.jpg"
    old = source.stat().st_mtime_ns - 10**12  # as `cp -p`, `rsync -a` or `tar` leave it
    Image.fromarray(faces[3]).save(source, quality=95)
    os.utime(source, ns=(old, old))
    again = crop_shard(tree, out, ["alice"], OPTIONS)
    assert again["resumed"] == 1 and again["ok"] == 2
    assert (out / "alice" / "a.png").read_bytes() != before
    assert crop_shard(tree, out, ["alice"], OPTIONS)["resumed"] == 2


def test_rerun_removes_crops_that_no_longer_stand_for_a_face(tree, tmp_path):
    out = tmp_path / "out"
    crop_shard(tree, out, ["alice", "bob"], OPTIONS)
    table = next((out / ".shards").glob("*.parquet"))
    later = table.stat().st_mtime_ns + 10**9
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(tree / "bob" / "face.png")  # now without a face
    os.utime(tree / "bob" / "face.png", ns=(later, later))
    (tree / "alice" / "a.jpg").unlink()  # gone: a.png takes back its plain name
    again = crop_shard(tree, out, ["alice", "bob"], OPTIONS)
    rows = {row["source"]: row for row in pq.read_table(table).to_pylist()}
    assert rows["bob/face.png"]["status"] == "no_face" and "alice/a.jpg" not in rows
    assert rows["alice/a.png"]["output"] == "alice/a.png"
    assert again["removed"] == 2  # bob/face.png and alice/a.png.png
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["alice/a.png"]


def test_names_that_are_not_utf8_are_skipped_and_counted(tree, tmp_path, faces, caplog):
    bad_file = os.path.join(os.fsencode(tree / "alice"), b"caf\xe9.png")
    Image.fromarray(faces[0]).save(os.fsdecode(bad_file), format="PNG")
    os.mkdir(os.path.join(os.fsencode(tree), b"z\xff"))
    Image.fromarray(faces[1]).save(os.fsdecode(os.path.join(os.fsencode(tree), b"z\xff", b"x.png")), format="PNG")
    out = tmp_path / "out"
    summary = crop_tree(tree, out, OPTIONS, shard_size=1)
    assert summary["shards"] == 2 and summary["bad_name"] == 2 and summary["ok"] == 3
    assert summary["unreadable"] == 3  # bob/broken.jpg and the two names
    rows = _rows(out)
    assert set(rows) == {
        "alice/a.jpg",
        "alice/a.png",
        "alice/caf\ufffd.png",
        "bob/blank.png",
        "bob/broken.jpg",
        "bob/face.png",
        "bob/tiny.png",
        "z\ufffd/x.png",
    }
    assert rows["alice/caf\ufffd.png"]["status"] == rows["z\ufffd/x.png"]["status"] == "unreadable"
    assert rows["alice/caf\ufffd.png"]["reason"] == "file name is not valid UTF-8"
    assert rows["z\ufffd/x.png"]["reason"] == "identity folder name is not valid UTF-8"
    assert "caf\ufffd.png" in caplog.text and "z\ufffd" in caplog.text
    again = crop_tree(tree, out, OPTIONS, shard_size=1)
    assert again["resumed"] == 6 and again["bad_name"] == 2 and _rows(out) == rows


def test_rerun_with_other_options_is_refused(tree, tmp_path):
    out = tmp_path / "out"
    crop_shard(tree, out, ["alice"], OPTIONS)
    with pytest.raises(ValueError, match="crop options"):
        crop_shard(tree, out, ["alice"], CropOptions(image_size=41, workers=1))


def test_folder_name_tags_only_output_options_that_differ():
    assert CropOptions(batch_size=2, device="cuda", workers=3, png_compress_level=9).folder_name("lfw") == "lfw"
    assert CropOptions(image_size=160, margin=32).folder_name("lfw") == "lfw-image_size160-margin32"
    tagged = CropOptions(thresholds=(0.6, 0.7, 0.8), factor=0.5, exif_transpose=True).folder_name("eval-x")
    assert tagged == "eval-x-thresholds0.6,0.7,0.8-factor0.5-exif_transpose"


def test_margin_grows_the_crop_box(tree, tmp_path):
    plain, wide = tmp_path / "plain", tmp_path / "wide"
    crop_shard(tree, plain, ["bob"], OPTIONS)
    crop_shard(tree, wide, ["bob"], CropOptions(image_size=40, margin=10, workers=1))
    merge_detections(plain)
    merge_detections(wide)
    r, w = _rows(plain)["bob/face.png"], _rows(wide)["bob/face.png"]
    assert (w["crop_x1"], w["crop_y1"]) == (max(int(r["x1"] - 5), 0), max(int(r["y1"] - 5), 0))
    assert (w["crop_x2"], w["crop_y2"]) == (min(int(r["x2"] + 5), 96), min(int(r["y2"] + 5), 96))


@pytest.mark.slow
def test_worker_processes_give_the_same_table(tree, tmp_path):
    crop_tree(tree, tmp_path / "one", OPTIONS, shard_size=1)
    crop_tree(tree, tmp_path / "two", CropOptions(image_size=40, batch_size=2, workers=2), shard_size=1)
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")


@pytest.mark.slow
def test_run_shard_from_threads_crops_in_worker_processes(tree, tmp_path):
    two = CropOptions(image_size=40, batch_size=2, workers=2)
    shared_detector.cache_clear()
    with CropPool(2) as pool, ThreadPoolExecutor(2) as threads:
        list(threads.map(lambda names: run_shard(tree, tmp_path / "two", names, two, pool=pool), list_shards(tree, 1)))
    assert shared_detector.cache_info().currsize == 0  # the networks never ran in this process
    merge_detections(tmp_path / "two", [shard_id(names) for names in list_shards(tree, 1)])
    crop_tree(tree, tmp_path / "one", OPTIONS, shard_size=1)
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")


def test_shards_ids_and_fingerprints(tree):
    assert list_shards(tree, 1) == [["alice"], ["bob"]]
    assert shard_id(["bob", "alice"]) == shard_id(["alice", "bob"]) != shard_id(["alice"])
    before = shard_fingerprint(tree, ["alice"])
    assert before == shard_fingerprint(tree, ["alice"])
    (tree / "alice" / "a.jpg").write_bytes(b"changed")
    assert shard_fingerprint(tree, ["alice"]) != before
    assert shard_fingerprint(tree, ["bob"]) == shard_fingerprint(tree, ["bob"])


def test_missing_input_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        crop_tree(tmp_path / "nowhere", tmp_path / "out", OPTIONS)


def test_command_accepts_hyphenated_flags(tree, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    crop_command.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(
        ["crop", str(tree), str(out), "--image-size", "32", "--crop-batch-size", "3", "--workers", "1"]
        + ["--device", "cpu", "--exif-transpose", "--shard-size", "5", "--png-compress-level", "9"]
    )
    assert (args.image_size, args.crop_batch_size, args.exif_transpose, args.png_compress_level) == (32, 3, True, 9)
    assert args.func(args) == 0
    assert '"ok": 3' in capsys.readouterr().out
    assert Image.open(out / "bob" / "face.png").size == (32, 32)


def test_rerun_removes_what_a_killed_run_left_half_written(tree, tmp_path):
    out = tmp_path / "out"
    crop_shard(tree, out, ["bob"], OPTIONS)
    table = next((out / ".shards").glob("*.parquet"))
    (out / "bob" / "face.png").unlink()
    leftovers = [out / "bob" / ".face.png.k3j_x9q2.tmp", out / ".shards" / f".{table.name}.a1b2c3d4.tmp"]
    unrelated = [out / "bob" / ".notes.txt.a1b2c3d4.tmp", out / "bob" / "face.png.tmp"]
    for path in leftovers + unrelated:
        path.write_bytes(b"half")
    again = crop_shard(tree, out, ["bob"], OPTIONS)
    assert again["cleaned"] == 2
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in unrelated)
    assert (out / "bob" / "face.png").is_file()


def test_png_compress_level_changes_file_size_never_pixels(tree, tmp_path):
    fast, small = tmp_path / "fast", tmp_path / "small"
    crop_shard(tree, fast, ["alice", "bob"], CropOptions(image_size=96, batch_size=2, png_compress_level=0))
    crop_shard(tree, small, ["alice", "bob"], CropOptions(image_size=96, batch_size=2, png_compress_level=9))
    pngs = sorted(p.relative_to(fast) for p in fast.rglob("*.png"))
    assert pngs == sorted(p.relative_to(small) for p in small.rglob("*.png")) and len(pngs) == 3
    for rel in pngs:
        assert np.array_equal(np.asarray(Image.open(fast / rel)), np.asarray(Image.open(small / rel)))
        assert (small / rel).stat().st_size < (fast / rel).stat().st_size
    with pytest.raises(ValueError, match="png_compress_level"):
        CropOptions(png_compress_level=10)


def test_crops_present_checks_every_png_a_shard_table_lists(tree, tmp_path):
    out = tmp_path / "out"
    table = crop_shard(tree, out, ["alice", "bob"], OPTIONS)["table"]
    assert crop_module.crops_present(table)
    (out / "bob" / "face.png").unlink()
    assert not crop_module.crops_present(table)


def _pngs(out):
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*.png")}


def test_regrouped_shards_resume_by_source_and_old_tables_are_dropped(tree, tmp_path, faces):
    out = tmp_path / "out"
    crop_tree(tree, out, OPTIONS, shard_size=1)
    before, rows = _pngs(out), _rows(out)
    (tree / "carol").mkdir()  # a new folder: the shards of 2 folders each take alice+bob, carol
    Image.fromarray(faces[3]).save(tree / "carol" / "c.png")
    summary = crop_tree(tree, out, OPTIONS, shard_size=2)
    assert (summary["shards"], summary["resumed"], summary["ok"], summary["dropped"]) == (2, 6, 4, 2)
    assert {k: v for k, v in _pngs(out).items() if k in before} == before  # nothing cropped again
    assert {src: r for src, r in _rows(out).items() if src in rows} == rows
    tables = sorted(p.stem for p in (out / ".shards").iterdir())
    assert tables == sorted([shard_id(["alice", "bob"]), shard_id(["carol"])])


def test_a_deleted_identity_folder_takes_its_crops_along(tree, tmp_path):
    out = tmp_path / "out"
    crop_tree(tree, out, OPTIONS, shard_size=1)
    (out / "alice" / "notes.txt").write_text("mine")  # not the stage's: stays
    (out / "alice" / "other.png").write_bytes(b"mine too")  # no table lists it: stays
    for path in (tree / "alice").iterdir():
        path.unlink()
    (tree / "alice").rmdir()
    summary = crop_tree(tree, out, OPTIONS, shard_size=1)
    assert (summary["dropped"], summary["removed"], summary["resumed"]) == (1, 2, 4)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet") == [
        ".crop.lock",
        "alice/notes.txt",
        "alice/other.png",
        "bob/face.png",
    ]
    assert [p.stem for p in (out / ".shards").iterdir()] == [shard_id(["bob"])]
    assert all(src.startswith("bob/") for src in _rows(out))


def test_symlink_loops_broken_links_and_fifos_get_rows(tree, tmp_path):
    (tree / "bob" / "loop.jpg").symlink_to("loop.jpg")
    (tree / "bob" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tree / "bob" / "link.png").symlink_to(tree / "bob" / "face.png")  # a good link is an image
    (tree / "dave").symlink_to("dave")  # an identity folder that loops
    os.mkfifo(tree / "bob" / "pipe.jpg")  # opening it would wait for a writer forever: never opened
    out = tmp_path / "out"
    summary = crop_tree(tree, out, OPTIONS, shard_size=1)
    rows = _rows(out)
    assert rows["bob/pipe.jpg"]["reason"] == "not a regular file"
    assert (rows["bob/loop.jpg"]["status"], rows["bob/loop.jpg"]["reason"]) == ("unreadable", "symbolic link loop")
    assert rows["bob/gone.png"]["reason"] == "broken symbolic link (its target does not exist)"
    assert rows["dave/"]["reason"] == "symbolic link loop"
    assert rows["bob/link.png"]["status"] == "ok"
    assert summary["unreadable"] == 5 and summary["ok"] == 4


def test_version_1_tables_are_taken_over_except_rows_without_reason(tree, tmp_path):
    out = tmp_path / "out"
    crop_tree(tree, out, OPTIONS, shard_size=2)
    table = next((out / ".shards").glob("*.parquet"))
    old = pq.read_table(table).drop_columns(["reason"])
    metadata = dict(old.schema.metadata)
    options = json.loads(metadata[b"facenet.crop_options"]) | {"stage_version": 1}
    metadata[b"facenet.crop_options"] = json.dumps(options).encode()
    del metadata[b"facenet.identities"]
    pq.write_table(old.replace_schema_metadata(metadata), table)
    before = _pngs(out)
    summary = crop_tree(tree, out, OPTIONS, shard_size=2)
    assert summary["resumed"] == 3 and _pngs(out) == before  # the ok rows; the others get their reason
    assert _rows(out)["bob/broken.jpg"]["reason"].startswith("UnidentifiedImageError")
    assert json.loads(pq.read_schema(table).metadata[b"facenet.crop_options"])["stage_version"] == STAGE_VERSION


def test_output_folder_overlapping_the_input_is_refused(tree, tmp_path):
    before = tree_state(tmp_path)
    for output, problem in [(tree, "is the input folder"), (tree / "crops", "is inside"), (tmp_path, "contains")]:
        with pytest.raises(UserError, match=problem):
            crop_tree(tree, output, OPTIONS)
    assert tree_state(tmp_path) == before


def test_a_second_crop_of_a_folder_stops_or_waits(tree, tmp_path):
    out = tmp_path / "out"
    with ThreadPoolExecutor(1) as thread:
        with output_lock(out, wait=False):
            with pytest.raises(UserError, match=f"output folder {out} is being written by another crop"):
                crop_tree(tree, out, OPTIONS)
            assert sorted(p.name for p in out.iterdir()) == [".crop.lock"]
            waiting = thread.submit(crop_tree, tree, out, OPTIONS, 1, True)
            time.sleep(0.5)
            assert not waiting.done() and not (out / "bob").exists()
        assert waiting.result(60)["ok"] == 3


def test_stale_detections_temporary_at_the_root_is_removed(tree, tmp_path):
    out = tmp_path / "out"
    crop_tree(tree, out, OPTIONS)
    stale = [out / ".detections.parquet.x1y2z3.tmp", out / ".shards" / ".0123456789abcdef.parquet.q1.tmp"]
    kept = out / ".notes.txt.x1y2z3.tmp"
    for path in [*stale, kept]:
        path.write_bytes(b"half")
    assert crop_tree(tree, out, OPTIONS)["cleaned"] == 2
    assert not any(path.exists() for path in stale) and kept.exists()


ALIGNED = CropOptions(image_size=40, batch_size=2, workers=1, method="aligned")


def test_aligned_options_name_their_folder_and_refuse_a_margin():
    assert CropOptions(method="aligned").folder_name("lfw") == "lfw-aligned"
    assert ALIGNED.folder_name("lfw") == "lfw-aligned-image_size40"
    assert OPTIONS.folder_name("lfw") == "lfw-image_size40"
    # mtcnn crops keep the options they always recorded (tables, cache keys): no method named
    assert "method" not in CropOptions().output_options()
    assert CropOptions(method="aligned").output_options() == CropOptions().output_options() | {"method": "aligned"}
    with pytest.raises(UserError, match="crop margin 32: aligned crops are framed by the ArcFace template"):
        CropOptions(method="aligned", margin=32)
    with pytest.raises(UserError, match="crop method must be one of mtcnn, aligned"):
        CropOptions(method="similarity")


def test_aligned_crops_are_the_faces_warped_on_their_landmarks_beside_the_mtcnn_crops(tree, tmp_path):
    from facenet_core.detect.align import aligned_face, landmark_points
    from facenet_core.images import load_rgb

    cropped = tmp_path / "cropped"
    boxes = cropped / OPTIONS.folder_name("faces")
    aligned = cropped / ALIGNED.folder_name("faces")
    crop_tree(tree, boxes, OPTIONS)
    before = tree_state(boxes)
    summary = crop_tree(tree, aligned, ALIGNED)
    assert summary["ok"] == 3 and tree_state(boxes) == before  # the mtcnn crops are untouched
    assert crop_tree(tree, boxes, OPTIONS)["resumed"] == 6  # and still current
    box_rows, aligned_rows = _rows(boxes), _rows(aligned)
    assert box_rows == aligned_rows  # the same detections, selection and rows
    for source, row in aligned_rows.items():
        if row["status"] != "ok":
            continue
        landmarks = [row[f"lm_x{k}"] for k in range(1, 6)] + [row[f"lm_y{k}"] for k in range(1, 6)]
        expected = aligned_face(load_rgb(tree / source, False), landmark_points(np.array(landmarks)), 40)
        saved = np.asarray(Image.open(aligned / row["output"]))
        np.testing.assert_array_equal(saved, expected)
        assert not np.array_equal(saved, np.asarray(Image.open(boxes / row["output"])))
    with pytest.raises(UserError, match="crop into a new output folder"):
        crop_shard(tree, boxes, ["alice"], ALIGNED)


def test_command_crops_aligned_with_method_aligned(tree, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    crop_command.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(
        ["crop", str(tree), str(out), "--method", "aligned", "--image-size", "48", "--workers", "1"]
    )
    assert crop_command.crop_options(args) == CropOptions(image_size=48, workers=1, device="auto", method="aligned")
    assert args.func(args) == 0
    assert '"ok": 3' in capsys.readouterr().out
    assert Image.open(out / "bob" / "face.png").size == (48, 48)
    assert (
        json.loads(pq.read_schema(out / "detections.parquet").metadata[b"facenet.crop_options"])["method"] == "aligned"
    )
