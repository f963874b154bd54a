"""The synthetic demo dataset: reproducible bytes, LFW layout, valid pairs, faces MTCNN finds."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_core.fileio import sha256_file
from facenet_core.synthetic.demo import generate_identities, make_demo_dataset
from facenet_core.synthetic.pack import lfw_pairs
from facenet_core.synthetic.render import identity_shape, render_image
from flows.cli import synthetic as synthetic_command

SMALL = {
    "num_train_identities": 3,
    "num_eval_identities": 4,
    "images_per_identity": 3,
    "seed": 5,
    "num_folds": 2,
    "pairs_per_fold": 2,
    "image_size": 96,
}


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), **SMALL)


def test_same_arguments_give_the_same_archive_bytes(demo: dict, tmp_path: Path) -> None:
    again = make_demo_dataset(tmp_path / "again", **SMALL)
    assert again["archive"].read_bytes() == demo["archive"].read_bytes()
    assert again["sha256"] == demo["sha256"] == sha256_file(demo["archive"])
    assert demo["sha256_file"].read_text() == f"{demo['sha256']}  synthetic_faces.tar.gz\n"
    other_seed = make_demo_dataset(tmp_path / "other", **{**SMALL, "seed": 6})
    assert other_seed["sha256"] != demo["sha256"]


def test_trees_hold_disjoint_identities_in_lfw_naming(demo: dict) -> None:
    train = sorted(p.name for p in demo["train"].iterdir())
    held_out = sorted(p.name for p in demo["eval"].iterdir())
    assert train == ["person_0000", "person_0001", "person_0002"]
    assert held_out == ["person_0003", "person_0004", "person_0005", "person_0006"]
    for root, names in ((demo["train"], train), (demo["eval"], held_out)):
        for name in names:
            files = sorted(p.name for p in (root / name).iterdir())
            assert files == [f"{name}_{n:04d}.jpg" for n in (1, 2, 3)]
            with Image.open(root / name / files[0]) as image:
                assert (image.format, image.size) == ("JPEG", (96, 96))
    assert demo["num_train_images"] == 9 and demo["num_eval_images"] == 12 and demo["num_pairs"] == 8


def test_archive_holds_exactly_the_written_tree_with_neutral_metadata(demo: dict) -> None:
    out_dir = demo["archive"].parent
    with tarfile.open(demo["archive"]) as tar:
        members = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
    on_disk = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}
    on_disk -= {"synthetic_faces.tar.gz", "synthetic_faces.tar.gz.sha256"}
    assert set(files) == on_disk
    assert all(files[name] == (out_dir / name).read_bytes() for name in files)
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert json.loads(files["synthetic.json"])["seed"] == 5


def test_pairs_file_is_lfw_view2_over_held_out_images(demo: dict) -> None:
    lines = demo["pairs"].read_text().splitlines()
    assert lines[0] == "2\t2"
    body = [line.split("\t") for line in lines[1:]]
    assert len(body) == 2 * 2 * 2
    held_out = {p.name for p in demo["eval"].iterdir()}
    seen = set()
    for fold in range(2):
        block = body[fold * 4 : (fold + 1) * 4]
        assert [len(fields) for fields in block] == [3, 3, 4, 4]
        for fields in block:
            name1, i, name2, j = fields if len(fields) == 4 else (fields[0], fields[1], fields[0], fields[2])
            assert {name1, name2} <= held_out
            assert (demo["eval"] / name1 / f"{name1}_{int(i):04d}.jpg").is_file()
            assert (demo["eval"] / name2 / f"{name2}_{int(j):04d}.jpg").is_file()
            assert (name1 < name2) if len(fields) == 4 else int(i) < int(j)
            assert tuple(fields) not in seen
            seen.add(tuple(fields))
    blocks = [body[:4], body[4:]]
    people = [{f[0] for f in block} | {f[2] for f in block if len(f) == 4} for block in blocks]
    assert not people[0] & people[1], "with >= 2 people per fold, folds share no person (as LFW)"


def test_pairs_are_unique_when_folds_share_people() -> None:
    folds = lfw_pairs(["a", "b", "c"], 4, num_folds=10, pairs_per_fold=1, seed=0)
    flat = [pair for fold in folds for pair in fold]
    assert len(flat) == 20 and len(set(flat)) == 20
    assert [pair[0] == pair[2] for pair in folds[3]] == [True, False]


def test_impossible_pair_counts_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pairs_per_fold=50"):
        lfw_pairs(["a", "b", "c"], 3, num_folds=10, pairs_per_fold=50, seed=0)
    with pytest.raises(ValueError, match="num_eval_identities"):
        make_demo_dataset(tmp_path, **{**SMALL, "num_eval_identities": 1})
    with pytest.raises(ValueError, match="images_per_identity"):
        generate_identities(tmp_path, num_identities=2, images_per_identity=0, seed=0)
    with pytest.raises(ValueError, match="image_size must be an integer >= 64"):
        generate_identities(tmp_path, num_identities=2, images_per_identity=2, seed=0, image_size=32)
    assert not any(tmp_path.iterdir()), "nothing is written when an argument is refused"


def test_identities_differ_while_each_identity_is_stable() -> None:
    shapes = [identity_shape(0, index) for index in range(6)]
    assert identity_shape(0, 3) == shapes[3]
    for field in ("face_aspect", "eye_spacing", "nose_length", "mouth_width", "skin_rgb"):
        values = [getattr(shape, field) for shape in shapes]
        assert len(set(values)) == len(values), field
    assert identity_shape(1, 0) != shapes[0]
    assert {f.name for f in dataclasses.fields(shapes[0])} >= {"hair_rgb", "glasses", "beard", "brow_tilt"}


def test_pictures_of_one_identity_vary() -> None:
    shape = identity_shape(0, 0)
    first, second = (_pixels(render_image(0, 0, n, 128, shape)) for n in (1, 2))
    assert render_image(0, 0, 1, 128, shape) == render_image(0, 0, 1, 128)
    assert np.abs(first - second).mean() > 10.0


def test_generate_identities_writes_lfw_tree(tmp_path: Path) -> None:
    root = generate_identities(tmp_path / "faces", num_identities=2, images_per_identity=2, seed=1, image_size=64)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == [
        "person_0000/person_0000_0001.jpg",
        "person_0000/person_0000_0002.jpg",
        "person_0001/person_0001_0001.jpg",
        "person_0001/person_0001_0002.jpg",
    ]


def test_rebuilding_with_fewer_identities_drops_the_old_ones(tmp_path: Path) -> None:
    make_demo_dataset(tmp_path, **SMALL)
    made = make_demo_dataset(tmp_path, **{**SMALL, "num_train_identities": 1})
    assert sorted(p.name for p in made["train"].iterdir()) == ["person_0000"]
    assert sorted(p.name for p in made["eval"].iterdir())[0] == "person_0001"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    synthetic_command.register(parser.add_subparsers())
    return parser.parse_args(["synthetic", *argv])


def test_command_writes_the_archive_and_rejects_bad_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    flags = ["--num_train_identities", "2", "--num-eval-identities", "2", "--images_per_identity", "2"]
    flags += ["--num_folds", "1", "--pairs_per_fold", "1", "--image_size", "64"]
    args = _parse([str(tmp_path), *flags])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sha256"] == sha256_file(tmp_path / "synthetic_faces.tar.gz")
    assert _parse([str(tmp_path)]).pairs_per_fold == 30
    with pytest.raises(SystemExit):
        _parse([str(tmp_path), "--seed", "-1"])
    assert "--seed: -1 is out of range (allowed 0..4294967295)" in capsys.readouterr().err


@pytest.mark.slow
def test_mtcnn_finds_most_synthetic_faces(tmp_path: Path) -> None:
    from facenet_core.detect.detector import MTCNN

    root = generate_identities(tmp_path, num_identities=16, images_per_identity=4, seed=11)
    files = sorted(root.rglob("*.jpg"))
    faces = MTCNN().detect([np.asarray(Image.open(f).convert("RGB")) for f in files])
    found = [len(f.boxes) > 0 for f in faces]
    assert np.mean(found) >= 0.9
    widths = [f.boxes[0, 2] - f.boxes[0, 0] for f in faces if len(f.boxes)]
    assert 50 < np.median(widths) < 130
