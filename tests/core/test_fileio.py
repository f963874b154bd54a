"""Atomic writes: nothing under the final name until the block succeeds; ordinary permissions, the umask
never touched; stale temporaries."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from facenet_core.fileio import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    remove_stale_temporaries,
    sha256_file,
    sha256_json,
)


def test_failed_block_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_named_targets_are_recognised_and_removed(tmp_path):
    (tmp_path / "keep.v1.png").write_bytes(b"done")
    with atomic_path(tmp_path / "a.v1.png") as tmp:
        tmp.write_bytes(b"half")
        os.link(tmp, tmp_path / "stale")
    (tmp_path / "stale").rename(tmp)  # the temporary under atomic_path's own name, as a killed run leaves it
    (tmp_path / ".other.png.x1.tmp").write_bytes(b"someone else's")
    assert remove_stale_temporaries(tmp_path, {"a.v1.png", "keep.v1.png"}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.png.x1.tmp", "a.v1.png", "keep.v1.png"]
    assert remove_stale_temporaries(tmp_path / "missing", {"a.v1.png"}) == 0


def test_success_replaces_target_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    atomic_write_json(target, {"a": 2})
    assert target.read_text() == '{\n  "a": 2\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_hashes_are_content_and_order_stable(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})


def test_atomic_writes_never_change_the_umask(tmp_path, monkeypatch):
    def forbidden(mask):
        raise AssertionError("the process umask was changed")

    monkeypatch.setattr(os, "umask", forbidden)
    atomic_write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert (tmp_path / "a" / "b.json").read_text() == '{\n  "x": 1\n}\n'


def test_folders_made_by_writing_threads_keep_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda k: atomic_write_bytes(tmp_path / f"d{k}" / "f", b"x"), range(400)))
    finally:
        os.umask(umask)
    modes = {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    files = {p.stat().st_mode & 0o777 for p in tmp_path.glob("*/f")}
    assert (modes, files) == ({0o755}, {0o644})


def test_stale_temporaries_by_predicate(tmp_path):
    (tmp_path / ".0123456789abcdef.parquet.k3j_x9q2.tmp").write_bytes(b"half")
    (tmp_path / ".notes.txt.a1b2c3d4.tmp").write_bytes(b"someone else's")
    assert remove_stale_temporaries(tmp_path, lambda name: name.endswith(".parquet")) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".notes.txt.a1b2c3d4.tmp"]
