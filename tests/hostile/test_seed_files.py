"""Hostile seed files: CSV manifests naming paths outside the root, garbage CSVs, and evaluation
folders that are not folders. One line and exit 2 for what the user must fix, rejects recorded for
bad rows, nothing written or read outside the target."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from support.tree_state import tree_state

from facenet_core.data.manifest import sidecar_paths
from facenet_core.models import create_model
from flows.cli import main


def _image(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(value).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def trees(tmp_path):
    """root/ (the CSV's images), outside/ (a sibling that must stay unread and unchanged), out/."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    _image(root / "ann" / "a1.jpg", 1)
    _image(root / "ann" / "a2.png", 2)
    _image(outside / "secret.jpg", 3)
    _image(outside / "ann" / "a3.jpg", 4)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "ann" / "leak.jpg").symlink_to(outside / "secret.jpg")
    return root, outside, tmp_path / "out"


def test_csv_rows_naming_paths_outside_the_root_are_rejected(trees, capsys):
    root, outside, out = trees
    csv_path = out.parent / "hostile.csv"
    rows = ["a1,ann", "a2,ann", "secret,..", "secret,../outside", "a3,../outside/ann", "secret,escape"]
    rows += ["../../outside/secret,ann", "/abs/secret,ann", "secret,/tmp", "..,ann", '"",ann', 'a1,""']
    csv_path.write_text("id,name,class\n" + "\n".join(f"{r},0" for r in rows) + "\n")
    before = {"root": tree_state(root), "outside": tree_state(outside)}

    manifest = out / "m.parquet"
    args = ["manifest", "--from_csv", str(csv_path), "--root", str(root), "--out", str(manifest)]
    assert main([*args, "--no-progress", "--workers", "1"]) == 0
    assert [r["path"] for r in pq.read_table(manifest).to_pylist()] == ["ann/a1.jpg", "ann/a2.png"]
    rejects = pq.read_table(sidecar_paths(manifest)[0]).to_pylist()
    reasons = {r["path"]: r["reason"] for r in rejects}
    assert len(rejects) == len(rows) - 2
    for path in ("../secret", "../outside/secret", "../outside/ann/a3", "ann/../../outside/secret", "ann/.."):
        assert reasons[path].startswith("unsafe name"), path
    assert "resolves outside" in reasons["escape/secret"]
    assert reasons["ann/"].startswith("unsafe name") and reasons["/a1"].startswith("unsafe name")
    assert {"root": tree_state(root), "outside": tree_state(outside)} == before
    assert sorted(p.name for p in out.iterdir()) == ["m.parquet", "m.rejects.parquet", "m.summary.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\x02\xff\xfe garbage \x00", "is not a readable CSV"),
        (b"PK\x03\x04 a zip, not a csv", "is not a readable CSV"),
        (b"name\nann\n", "has no id column"),
        (b"id,name,class\na1,ann,0,extra,columns\n", "is not a readable CSV"),
    ],
)
def test_garbage_csv_is_one_line_and_writes_nothing(trees, capsys, content, message):
    root, outside, out = trees
    csv_path = out.parent / "bad.csv"
    csv_path.write_bytes(content)
    before = {"root": tree_state(root), "outside": tree_state(outside)}
    args = ["manifest", "--from_csv", str(csv_path), "--root", str(root), "--out", str(out / "m.parquet")]
    assert main([*args, "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facenet manifest: error: --from_csv") and message in err[0]
    assert str(csv_path) in err[0]
    assert not out.exists()
    assert {"root": tree_state(root), "outside": tree_state(outside)} == before


def test_evaluate_on_a_file_or_missing_folder_writes_no_crops(trees, tmp_path, capsys):
    root, outside, _ = trees
    checkpoint = tmp_path / "model.pt"
    weights = create_model("resnet18", 8).state_dict()
    state = {"epoch": 0, "embedding_dimension": 8, "model_state_dict": weights, "model_architecture": "resnet18"}
    torch.save(state, checkpoint)
    (tmp_path / "pairs.txt").write_text("1\t1\nann\t1\t2\nann\t1\tbob\t1\n")
    workspace = tmp_path / "ws"
    before = tree_state(outside)
    for lfw in (outside / "secret.jpg", tmp_path / "nowhere"):
        pairs = tmp_path / "pairs.txt"
        args = ["evaluate", "--checkpoint", str(checkpoint), "--lfw", str(lfw), "--pairs", str(pairs)]
        assert main([*args, "--workspace", str(workspace), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--lfw {lfw} is not a folder" in err[0]
    assert not (workspace / "cropped").exists()
    assert tree_state(outside) == before
