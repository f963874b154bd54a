"""insightface .bin verification sets: restricted unpickling and conversion to folders + pairs.txt."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_core.evaluate.pairs import read_pairs, resolve_pairs
from facenet_core.ingest.insightface_bin import UnsafePickleError, convert_bin, load_bin


def face(value: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 6, 3), value, dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def issame_pattern() -> list[bool]:
    """10 folds of 2 pairs; odd folds store their different pair first."""
    flags = []
    for fold in range(10):
        flags += [False, True] if fold % 2 else [True, False]
    return flags


def write_bin(path: Path, images, issame, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps((images, issame), protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_plain_lists(tmp_path: Path, protocol: int) -> None:
    images = [face(i) for i in range(40)]
    path = write_bin(tmp_path / "lfw.bin", images, issame_pattern(), protocol)
    loaded, issame = load_bin(path)
    assert loaded == images and issame == issame_pattern()


def test_load_numpy_arrays(tmp_path: Path) -> None:
    images = [np.frombuffer(face(i), dtype=np.uint8) for i in range(40)]
    path = write_bin(tmp_path / "cfp.bin", images, np.array(issame_pattern()))
    loaded, issame = load_bin(path)
    assert loaded[3] == face(3) and issame == issame_pattern()


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_bin(tmp_path / "evil.bin", [Exploit(), b"x"], [True])
    with pytest.raises(UnsafePickleError, match="refusing to load global posix.system"):
        load_bin(path)
    assert not (tmp_path / "pwned").exists()


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = write_bin(tmp_path / "obj.bin", np.array([b"a", b"b"], dtype=object), [True])
    with pytest.raises(UnsafePickleError, match="dtype"):
        load_bin(path)


def test_shape_errors_name_the_file(tmp_path: Path) -> None:
    path = write_bin(tmp_path / "odd.bin", [face(1)] * 3, [True])
    with pytest.raises(ValueError, match="odd.bin: 3 images for 1 pairs"):
        load_bin(path)
    (tmp_path / "junk.bin").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="junk.bin"):
        load_bin(tmp_path / "junk.bin")


def test_convert_writes_lfw_style_folds(tmp_path: Path) -> None:
    issame = issame_pattern()
    images = [face(i) for i in range(40)]
    path = write_bin(tmp_path / "agedb_30.bin", images, issame)
    out = tmp_path / "agedb_30"
    summary = convert_bin(path, out)
    assert summary["pairs"] == 20 and summary["images"] == 40
    lines = (out / "pairs.txt").read_text().splitlines()
    assert lines[0] == "10\t1"
    assert lines[1:5] == [
        "pair_00000\t1\t2",
        "pair_00001_a\t1\tpair_00001_b\t1",
        "pair_00003\t1\t2",  # fold 1 stored its different pair first: same pairs come first
        "pair_00002_a\t1\tpair_00002_b\t1",
    ]
    assert (out / "pair_00003/pair_00003_0002.jpg").read_bytes() == images[7]
    assert (out / "pair_00002_b/pair_00002_b_0001.jpg").read_bytes() == images[5]
    pairs = read_pairs(out / "pairs.txt")
    resolved = resolve_pairs(pairs, out)
    assert resolved.missing_pairs == 0 and len(resolved.images) == 40
    assert pairs.issame.tolist() == [True, False] * 10


def test_convert_is_idempotent_and_png_kept(tmp_path: Path) -> None:
    images = [face(i, "PNG") for i in range(40)]
    path = write_bin(tmp_path / "calfw.bin", images, issame_pattern())
    out = tmp_path / "calfw"
    convert_bin(path, out)
    (out / "pairs.txt").write_text("edited")
    assert convert_bin(path, out)["pairs"] == 20
    assert (out / "pairs.txt").read_text() == "edited"
    assert (out / "pair_00000/pair_00000_0001.png").read_bytes() == images[0]


def test_unbalanced_folds_are_refused(tmp_path: Path) -> None:
    path = write_bin(tmp_path / "x.bin", [face(1)] * 40, [True] * 20)
    with pytest.raises(ValueError, match="x.bin: folds are not half same"):
        convert_bin(path, tmp_path / "x")
