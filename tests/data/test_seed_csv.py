"""The seed's CSV manifests (generate_csv_files.py) into the project's Parquet manifest."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from support.tree_state import tree_state

from facenet_core.data.manifest import build_manifest, read_manifest, sidecar_paths
from facenet_core.data.seed_csv import build_manifest_from_csv
from facenet_core.errors import UserError
from flows.cli import main as facenet

from .conftest import write_image


def seed_csv(dataroot: Path, csv_path: Path) -> Path:
    """What the seed's generate_csv_files.py writes for `dataroot` (its logic, pandas included)."""
    rows = [
        {"id": os.path.basename(f).split(".")[0], "name": os.path.basename(os.path.dirname(f))}
        for f in glob.glob(str(dataroot) + "/*/*")
    ]
    frame = pd.DataFrame(rows).sort_values(by=["name", "id"]).reset_index(drop=True)
    frame["class"] = pd.factorize(frame["name"])[0]
    frame.to_csv(path_or_buf=csv_path, index=False)
    return csv_path


def test_a_seed_csv_of_a_whole_folder_gives_the_scanned_manifest(image_tree, tmp_path):
    """Same labels, order, columns and fingerprint as scanning the folder; numeric names stay text."""
    root = image_tree({"zoe": 2, "0042": 3, "adam": 2, "007": 1})
    csv_path = seed_csv(root, tmp_path / "seed.csv")
    summary = build_manifest_from_csv(csv_path, root, tmp_path / "from_csv.parquet", workers=1, progress=False)
    scanned = build_manifest(root, tmp_path / "scanned.parquet", workers=1, progress=False)

    assert summary["fingerprint"] == scanned["fingerprint"]
    ours, theirs = pq.read_table(tmp_path / "from_csv.parquet"), pq.read_table(tmp_path / "scanned.parquet")
    assert ours.to_pylist() == theirs.to_pylist()
    assert ours.schema.metadata[b"facenet.root"] == str(root.resolve()).encode()
    manifest = read_manifest(tmp_path / "from_csv.parquet")
    assert manifest.identities == ["0042", "007", "adam", "zoe"]
    assert manifest.labels.tolist() == [0, 0, 0, 1, 2, 2, 3, 3]
    assert summary["labels_as_csv_class"] is True and summary["num_rejected"] == 0
    assert summary["num_csv_rows"] == summary["num_images"] == 8


def test_rows_whose_image_is_missing_unreadable_or_repeated_are_rejected(tmp_path):
    root = tmp_path / "root"
    write_image(root / "adam" / "a.jpg", value=1)
    write_image(root / "adam" / "b.png", value=2)
    write_image(root / "adam" / "c.jpeg", value=3)
    write_image(root / "adam" / "d.png", value=4)
    write_image(root / "adam" / "d.jpg", value=5)  # the seed tries .jpg first
    write_image(root / "adam" / "x.v2.jpg", value=6)  # the seed's id "x": cut at the first dot, never found
    write_image(root / "adam" / "not_listed.jpg", value=7)
    (root / "zoe").mkdir()
    (root / "zoe" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    write_image(root / "zoe" / "z.png", value=8)
    csv_path = tmp_path / "seed.csv"
    listed = ["z,zoe,2", "b,adam,0", "a,adam,0", "d,adam,0", "x,adam,0", "c,adam,0", "gone,adam,0", "a,adam,0"]
    listed += ["bad,zoe,2", "g1,ghost,1"]
    csv_path.write_text("id,name,class\n" + "\n".join(listed) + "\n")

    out = tmp_path / "m.parquet"
    summary = build_manifest_from_csv(csv_path, root, out, workers=1, progress=False)

    table = pq.read_table(out).to_pylist()
    assert [(r["path"], r["label"]) for r in table] == [
        ("adam/a.jpg", 0),
        ("adam/b.png", 0),
        ("adam/c.jpeg", 0),
        ("adam/d.jpg", 0),
        ("zoe/z.png", 1),
    ]
    assert table[3]["bytes"] == (root / "adam" / "d.jpg").stat().st_size
    rejects = dict(zip(*pq.read_table(sidecar_paths(out)[0]).to_pydict().values(), strict=True))
    assert rejects["adam/x"] == "missing: no x.jpg, .png or .jpeg"
    assert rejects["adam/gone"] == "missing: no gone.jpg, .png or .jpeg"
    assert rejects["ghost/g1"] == "missing: no identity folder"
    assert rejects["zoe/bad.jpg"].startswith("unreadable")
    assert rejects["adam/a"].startswith("duplicate row")
    assert summary["rejected_by_reason"] == {"duplicate row": 1, "missing": 3, "unreadable": 1}
    assert summary["num_csv_rows"] == 10 and summary["num_images"] == 5
    assert summary["labels_as_csv_class"] is False  # "ghost" had class 1 in the CSV: zoe is 1 here
    assert json.loads(sidecar_paths(out)[1].read_text())["from_csv"] == str(csv_path)


def test_unsafe_names_are_rejected_and_nothing_outside_is_read(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_image(root / "ann" / "a1.jpg")
    write_image(outside / "secret.jpg", value=3)
    (root / "link").symlink_to(outside, target_is_directory=True)
    csv_path = tmp_path / "seed.csv"
    csv_path.write_text("id,name,class\na1,ann,0\nsecret,../outside,1\nsecret,link,2\n../../outside/secret,ann,0\n")
    before = tree_state(outside)
    out = tmp_path / "out" / "m.parquet"
    build_manifest_from_csv(csv_path, root, out, workers=1, progress=False)
    assert [r["path"] for r in pq.read_table(out).to_pylist()] == ["ann/a1.jpg"]
    reasons = dict(zip(*pq.read_table(sidecar_paths(out)[0]).to_pydict().values(), strict=True))
    assert reasons["../outside/secret"].startswith("unsafe name") and "path separator" in reasons["../outside/secret"]
    assert "resolves outside" in reasons["link/secret"]
    assert reasons["ann/../../outside/secret"].startswith("unsafe name")
    assert tree_state(outside) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,class\nann,0\n", "has no id column"),
        ("id,name,class\n", "has no rows"),
        ("id,name,class\nz9,nobody,0\n", "no row names an image"),
        ('id,name\n"a,b\n', "not a readable CSV"),
    ],
)
def test_bad_csv_files_are_named(tmp_path, content, message):
    write_image(tmp_path / "root" / "ann" / "a1.jpg")
    csv_path = tmp_path / "seed.csv"
    csv_path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        build_manifest_from_csv(csv_path, tmp_path / "root", tmp_path / "m.parquet", workers=1, progress=False)
    assert str(csv_path) in str(error.value)
    assert not (tmp_path / "m.parquet").exists()


def test_cli_from_csv(image_tree, tmp_path, capsys):
    root = image_tree({"bob": 2, "amy": 2})
    csv_path = seed_csv(root, tmp_path / "seed.csv")
    out = tmp_path / "m.parquet"
    args = ["manifest", "--from_csv", str(csv_path), "--root", str(root), "--out", str(out), "--no-progress"]
    assert facenet([*args, "--workers", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_images"] == 4 and printed["num_identities"] == 2 and printed["labels_as_csv_class"] is True
    assert read_manifest(out).identities == ["amy", "bob"]

    before = tree_state(tmp_path)
    assert facenet(["manifest", "--from_csv", str(csv_path), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--root DIR" in capsys.readouterr().err
    assert facenet(["manifest", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--from_csv FILE --root DIR" in capsys.readouterr().err
    assert facenet(["manifest", "--from_csv", str(tmp_path / "none.csv"), "--root", str(root), "--out", "x"]) == 2
    assert "none.csv not found" in capsys.readouterr().err
    assert tree_state(tmp_path) == before
