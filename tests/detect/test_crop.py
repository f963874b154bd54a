"""The crop stage end to end on a tiny generated tree: statuses, crops, names, table, resume."""

import argparse
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from facenet_core.commands import crop as crop_command
from facenet_core.detect import crop as crop_module
from facenet_core.detect import parallel
from facenet_core.detect.crop import (
    CropOptions,
    crop_shard,
    merge_detections,
)
from facenet_core.detect.parallel import crop_tree, run_shard, shutdown_shard_processes
from facenet_core.detect.shards import list_shards, shard_fingerprint, shard_id
from facenet_core.detect.table import SCHEMA

OPTIONS = CropOptions(image_size=40, batch_size=2, workers=1)
COLUMNS = (
    ["source", "output", "status", "x1", "y1", "x2", "y2", "crop_x1", "crop_y1", "crop_x2", "crop_y2", "score"]
    + [f"lm_x{k}" for k in range(1, 6)]
    + [f"lm_y{k}" for k in range(1, 6)]
    + ["n_faces", "width", "height"]
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


def test_rerun_redoes_an_image_modified_since_it_was_cropped(tree, tmp_path):
    out = tmp_path / "out"
    first = crop_shard(tree, out, ["bob"], OPTIONS)
    images = sum(first[status] for status in ("ok", "no_face", "unreadable", "too_small"))
    table = next((out / ".shards").glob("*.parquet"))
    modified = table.stat().st_mtime_ns + 10**9
    os.utime(tree / "bob" / "face.png", ns=(modified, modified))
    again = crop_shard(tree, out, ["bob"], OPTIONS)
    assert again["resumed"] == images - 1 and again["ok"] == first["ok"]


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
    assert summary["shards"] == 2 and summary["bad_name"] == 1 and summary["ok"] == 3
    assert set(_rows(out)) == {
        "alice/a.jpg",
        "alice/a.png",
        "bob/blank.png",
        "bob/broken.jpg",
        "bob/face.png",
        "bob/tiny.png",
    }
    assert "caf\ufffd.png" in caplog.text and "z\ufffd" in caplog.text


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
    crop_module._detector.cache_clear()
    with ThreadPoolExecutor(2) as threads:
        list(threads.map(lambda names: run_shard(tree, tmp_path / "two", names, two), list_shards(tree, 1)))
    assert crop_module._detector.cache_info().currsize == 0  # the networks never ran in this process
    merge_detections(tmp_path / "two", [shard_id(names) for names in list_shards(tree, 1)])
    crop_tree(tree, tmp_path / "one", OPTIONS, shard_size=1)
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")

    broken = parallel._shard_processes(2)
    broken.submit(os._exit, 1).exception()  # a worker dies, the pool with it
    with pytest.raises(BrokenProcessPool):
        broken.submit(os.getpid)
    assert run_shard(tree, tmp_path / "two", ["alice"], two)["resumed"] == 2  # sent again to fresh processes
    assert parallel._shard_processes(2) is not broken
    pool = parallel._shard_processes(2)
    shutdown_shard_processes()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(os.getpid)


def test_overlapping_shards_in_threads_restore_the_torch_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()

    def shard_a():
        with crop_module._one_torch_thread():
            a_inside.set()
            b_inside.wait(10)
            inside = torch.get_num_threads()
        a_left.set()
        return inside

    def shard_b():  # enters after A, leaves after A: the order that used to leave one thread behind
        a_inside.wait(10)
        with crop_module._one_torch_thread():
            b_inside.set()
            a_left.wait(10)
            return torch.get_num_threads()

    def alone():  # a later shard in A's thread, the first one in again
        with crop_module._one_torch_thread():
            inside = torch.get_num_threads()
        return inside, torch.get_num_threads()

    try:
        with ThreadPoolExecutor(1) as thread_a, ThreadPoolExecutor(1) as thread_b:
            first, second = thread_a.submit(shard_a), thread_b.submit(shard_b)
            assert (first.result(20), second.result(20)) == (1, 1)
            assert thread_a.submit(alone).result(20) == (1, 2)
            assert thread_b.submit(torch.get_num_threads).result(20) == 2
        with ThreadPoolExecutor(1) as fresh:  # e.g. the training thread
            assert fresh.submit(torch.get_num_threads).result(20) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


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
