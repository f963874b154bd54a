"""Pairs files: both LFW layouts, errors with line numbers, the people filter, image resolution."""

import numpy as np
import pytest
from PIL import Image

from facenet_core.evaluate.pairs import filter_people, read_pairs, read_people, resolve_pairs

VIEW2 = """2\t2
Ann\t1\t2
Bob\t1\t3
Ann\t1\tBob\t2
Cid\t1\tDan\t1
Bob\t2\t3
Dan\t1\t2
Ann\t2\tCid\t1
Bob\t1\tDan\t2
"""


def write(path, text):
    path.write_text(text)
    return path


def test_view2_header_labels_and_positions(tmp_path):
    pairs = read_pairs(write(tmp_path / "pairs.txt", VIEW2))
    assert len(pairs) == 8 and pairs.total == 8
    assert pairs.issame.tolist() == [True, True, False, False, True, True, False, False]
    assert pairs.name1[2:4] == ["Ann", "Cid"] and pairs.name2[2:4] == ["Bob", "Dan"]
    assert pairs.num1.tolist() == [1, 1, 1, 1, 2, 1, 2, 1]
    assert pairs.num2.tolist() == [2, 3, 2, 1, 3, 2, 1, 2]
    assert pairs.index.tolist() == list(range(8))


def test_view1_single_number_header(tmp_path):
    text = "2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nCid\t1\tDan\t1\n\n"
    pairs = read_pairs(write(tmp_path / "pairsDevTest.txt", text))
    assert pairs.issame.tolist() == [True, True, False, False]


def test_folds_are_contiguous_and_sized_like_kfold(tmp_path):
    pairs = read_pairs(write(tmp_path / "pairs.txt", VIEW2))
    assert pairs.folds(10).tolist() == list(range(8))  # fewer pairs than folds: one each, two empty
    assert pairs.folds(3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]  # 8 = 3 + 3 + 2, as KFold
    kept = pairs.select(np.array([True, False, True, True, False, True, True, True]))
    assert kept.folds(3).tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("1\nAnn\t1\t2\nAnn\t1\n", 3, "got 2 fields"),
        ("1\nAnn\t1\t2\nAnn\tx\tBob\t1\n", 3, "image number must be an integer"),
        ("1\nAnn\t1\t2\nAnn\t1\tBob\t2\tzz\n", 3, "got 5 fields"),
        ("ten\nAnn\t1\t2\n", 1, "header"),
        ("1\t2\t3\nAnn\t1\t2\n", 1, "header"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, line, what):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=rf"bad\.txt:{line}: .*{what}"):
        read_pairs(path)


def test_count_disagreeing_with_header(tmp_path):
    with pytest.raises(ValueError, match=r"announces 4 pairs but the file has 3"):
        read_pairs(write(tmp_path / "p.txt", "2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\n"))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_pairs(tmp_path / "nope.txt")


def test_people_filter_keeps_original_positions(tmp_path):
    people_path = write(tmp_path / "peopleDevTest.txt", "3\nAnn\t2\nBob\t3\nDan\t2\n")
    assert read_people(people_path) == {"Ann", "Bob", "Dan"}
    pairs = filter_people(read_pairs(write(tmp_path / "pairs.txt", VIEW2)), read_people(people_path))
    assert pairs.index.tolist() == [0, 1, 2, 4, 5, 7]
    assert pairs.folds(2).tolist() == [0, 0, 0, 1, 1, 1]
    assert pairs.issame.tolist() == [True, True, False, True, True, False]


def test_people_file_with_fold_counts_and_errors(tmp_path):
    assert read_people(write(tmp_path / "people.txt", "2\n1\nAnn\t2\n2\nBob\t3\nCid\t1\n")) == {"Ann", "Bob", "Cid"}
    with pytest.raises(ValueError, match=r"bad_people\.txt:2"):
        read_people(write(tmp_path / "bad_people.txt", "1\nAnn\t2\textra\n"))


def make_tree(root, files):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(path)


def test_resolve_any_extension_each_image_once_and_missing_counted(tmp_path):
    root = tmp_path / "lfw"
    make_tree(
        root,
        ["Ann/Ann_0001.png", "Ann/Ann_0002.jpg", "Bob/Bob_0001.jpg", "Bob/Bob_0002.jpeg", "Cid/Cid_0001.png"],
    )
    (root / "Bob" / "Bob_0003.txt").write_text("not an image")
    (root / "Ann" / "Ann_0001.jpg.png").write_bytes((root / "Ann" / "Ann_0001.png").read_bytes())
    resolved = resolve_pairs(read_pairs(write(tmp_path / "pairs.txt", VIEW2)), root)
    # pairs 1 (Bob 3 is a .txt), 3 (Dan missing), 4 (Bob 3), 5 (Dan), 7 (Dan) are left out
    assert resolved.missing_pairs == 5
    assert resolved.missing_images == ["Bob/Bob_0003", "Dan/Dan_0001", "Dan/Dan_0002"]
    assert resolved.pairs.index.tolist() == [0, 2, 6]
    names = [f"{p.parent.name}/{p.name}" for p in resolved.images]
    assert names == ["Ann/Ann_0001.png", "Ann/Ann_0002.jpg", "Bob/Bob_0002.jpeg", "Cid/Cid_0001.png"]
    pairs_as_names = [(names[a], names[b]) for a, b in zip(resolved.left, resolved.right, strict=True)]
    assert pairs_as_names == [
        ("Ann/Ann_0001.png", "Ann/Ann_0002.jpg"),
        ("Ann/Ann_0001.png", "Bob/Bob_0002.jpeg"),
        ("Ann/Ann_0002.jpg", "Cid/Cid_0001.png"),
    ]


def test_resolve_missing_root(tmp_path):
    pairs = read_pairs(write(tmp_path / "pairs.txt", VIEW2))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_pairs(pairs, tmp_path / "nowhere")


@pytest.mark.lfw
def test_real_lfw_files(lfw_dir):
    view2 = read_pairs(lfw_dir / "pairs.txt")
    assert len(view2) == 6000 and view2.issame.sum() == 3000
    assert np.bincount(view2.folds(10)).tolist() == [600] * 10
    # each fold: 300 same then 300 different pairs
    assert all(view2.issame[k * 600 : k * 600 + 300].all() for k in range(10))
    assert not any(view2.issame[k * 600 + 300 : (k + 1) * 600].any() for k in range(10))
    dev_test = read_pairs(lfw_dir / "pairsDevTest.txt")
    assert len(dev_test) == 1000 and dev_test.issame[:500].all() and not dev_test.issame[500:].any()
    assert len(read_pairs(lfw_dir / "pairsDevTrain.txt")) == 2200
    people = read_people(lfw_dir / "peopleDevTest.txt")
    assert len(people) == 1711
    kept = filter_people(dev_test, people)
    assert len(kept) == 1000  # View 1 test pairs are all of DevTest people


@pytest.mark.lfw
def test_real_lfw_resolves_all_pairs(lfw_dir):
    resolved = resolve_pairs(read_pairs(lfw_dir / "pairs.txt"), lfw_dir / "lfw-deepfunneled")
    assert resolved.missing_pairs == 0 and resolved.missing_images == []
    assert len(resolved.pairs) == 6000
    assert len(resolved.images) == 7701
