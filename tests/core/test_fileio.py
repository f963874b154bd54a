"""Atomic writes: nothing under the final name until the block succeeds; ordinary permissions."""

import os

import pytest

from facenet_core.fileio import atomic_path, atomic_write_json, remove_stale_temporaries, sha256_file, sha256_json


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
