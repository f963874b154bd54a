"""`facenet evaluate` on raw images crops them first, as the training images were (cached in the
workspace, training crops reused); --cropped evaluates the images as they are."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from support.tree_state import tree_state

from facenet_core.config import Config, DatasetConfig, EvalSet
from facenet_core.config.loading import config_to_dict
from facenet_core.detect.options import CropOptions
from facenet_core.detect.parallel import crop_tree
from facenet_core.evaluate.crops import crop_folder_name, training_raw_root
from facenet_core.evaluate.report import evaluate_model
from facenet_core.models import create_model
from facenet_core.synthetic.demo import generate_identities
from facenet_core.workspace import Workspace
from flows.cli import main

PEOPLE = 4


@pytest.fixture(scope="module")
def raw_faces(tmp_path_factory) -> Path:
    """Raw synthetic face photos (128 px, face in the middle) and a View 2 style pairs.txt beside them."""
    base = tmp_path_factory.mktemp("raw")
    root = generate_identities(base / "faces", num_identities=PEOPLE, images_per_identity=2, seed=3, image_size=128)
    lines = ["10\t1"]
    for k in range(10):
        a, b = f"person_{k % PEOPLE:04d}", f"person_{(k + 1) % PEOPLE:04d}"
        lines += [f"{a}\t1\t2", f"{a}\t{1 + k % 2}\t{b}\t{1 + (k + 1) % 2}"]
    (base / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def _checkpoint(path: Path, config: Config | None) -> Path:
    torch.manual_seed(0)
    state = {
        "epoch": 2,
        "embedding_dimension": 16,
        "model_state_dict": create_model("resnet18", 16).state_dict(),
        "model_architecture": "resnet18",
        "best_distance_threshold": None,
        "image_size": 48,
    }
    if config is not None:
        state["config"] = config_to_dict(config)
    torch.save(state, path)
    return path


def _direct(checkpoint: Path, root: Path, pairs: Path) -> dict:
    model = create_model("resnet18", 16)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model_state_dict"])
    defaults = Config()
    result = evaluate_model(
        model.eval(),
        EvalSet(name="faces", root=str(root), pairs=str(pairs)),
        image_size=48,
        mean=defaults.normalize_mean,
        std=defaults.normalize_std,
        batch_size=200,
        device="cpu",
    )
    return result.metrics


def _evaluate(capsys, *args) -> tuple[dict, str]:
    assert main(["evaluate", *args, "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_raw_images_are_cropped_once_then_reused_and_cropped_skips_it(raw_faces, tmp_path, capsys):
    seed_style = _checkpoint(tmp_path / "model.pt", None)  # no config: the reference crop (224 px, margin 0)
    workspace = tmp_path / "ws"
    pairs = raw_faces.parent / "pairs.txt"
    args = ["--checkpoint", str(seed_style), "--lfw", str(raw_faces), "--workspace", str(workspace)]
    raw_before = tree_state(raw_faces.parent)

    metrics, err = _evaluate(capsys, *args)
    crops = workspace / "cropped" / "eval-faces"
    assert f"evaluating on MTCNN crops (224 px, margin 0) in {crops}: {2 * PEOPLE} faces (0 images reused" in err
    first = crops / "person_0000" / "person_0000_0001.png"
    assert Image.open(first).size == (224, 224)
    assert metrics == pytest.approx(_direct(seed_style, crops, pairs))
    assert metrics["num_pairs"] == 20 and metrics["missing_pairs"] == 0
    made = first.stat().st_mtime_ns

    again, err = _evaluate(capsys, *args)
    assert f"{2 * PEOPLE} faces ({2 * PEOPLE} images reused" in err
    assert first.stat().st_mtime_ns == made and again == metrics

    as_is, err = _evaluate(capsys, *args, "--cropped")
    assert "MTCNN" not in err
    assert as_is == pytest.approx(_direct(seed_style, raw_faces, pairs))
    assert as_is["best_distance_threshold"] != metrics["best_distance_threshold"]
    assert sorted(p.name for p in (workspace / "cropped").iterdir()) == ["eval-faces"]
    assert tree_state(raw_faces.parent) == raw_before  # the raw images are only read


def test_training_crops_of_the_same_folder_are_reused_with_the_training_options(raw_faces, tmp_path, capsys):
    workspace = tmp_path / "ws"
    config = Config(
        workspace=str(workspace),
        dataset=DatasetConfig(name="mini", path=str(raw_faces)),
        crop_image_size=160,
        crop_margin=16,
        crop_workers=1,
    )
    training_crops = workspace / "cropped" / "mini-image_size160-margin16"  # the training flow's folder
    assert crop_folder_name(config, Workspace(workspace), raw_faces) == training_crops.name
    crop_tree(raw_faces, training_crops, replace(CropOptions.from_config(config), device="cpu"))
    before = tree_state(training_crops)
    checkpoint = _checkpoint(tmp_path / "ours.pt", config)

    metrics, err = _evaluate(capsys, "--checkpoint", str(checkpoint), "--lfw", str(raw_faces))  # workspace: its own
    assert f"(160 px, margin 16) in {training_crops}: {2 * PEOPLE} faces ({2 * PEOPLE} images reused" in err
    assert Image.open(training_crops / "person_0001" / "person_0001_0002.png").size == (160, 160)
    assert metrics == pytest.approx(_direct(checkpoint, training_crops, raw_faces.parent / "pairs.txt"))
    assert sorted(p.name for p in (workspace / "cropped").iterdir()) == [training_crops.name]
    after = tree_state(training_crops)
    assert {k: v for k, v in after.items() if k.endswith(".png")} == {
        k: v for k, v in before.items() if k.endswith(".png")
    }


def test_crop_folder_names_follow_the_training_flow(tmp_path):
    ws = Workspace(tmp_path / "ws")
    lfw = tmp_path / "data" / "lfw-deepfunneled"
    config = Config(
        dataset=DatasetConfig(name="casia", path=str(tmp_path / "casia")),
        eval_sets=[EvalSet(name="lfw-view2", root=str(lfw), pairs=str(tmp_path / "pairs.txt"))],
        exif_transpose=True,
    )
    assert training_raw_root(config, ws) == (tmp_path / "casia").resolve()
    assert crop_folder_name(config, ws, tmp_path / "casia") == "casia-exif_transpose"
    assert crop_folder_name(config, ws, lfw) == "eval-lfw-view2-exif_transpose"
    assert crop_folder_name(config, ws, tmp_path / "other") == "eval-other-exif_transpose"
    downloaded = Config(dataset=DatasetConfig(name="lfw", catalogue="lfw"))
    assert training_raw_root(downloaded, ws) == (ws.raw / "lfw" / "lfw-deepfunneled").resolve()
    assert crop_folder_name(downloaded, ws, ws.raw / "lfw" / "lfw-deepfunneled") == "lfw"
    assert training_raw_root(Config(dataroot=str(tmp_path / "crops")), ws) is None


def test_lfw_cropped_makes_the_lfw_eval_set_aligned(tmp_path):
    config = Config(lfw=str(tmp_path / "crops"), lfw_cropped=True)
    assert [s.aligned for s in config.resolved_eval_sets()] == [True]
    assert [s.aligned for s in Config(lfw=str(tmp_path / "raw")).resolved_eval_sets()] == [False]


def test_a_training_workspace_absent_here_falls_back_to_the_current_folder(raw_faces, tmp_path, monkeypatch, capsys):
    """A checkpoint from another machine names a workspace that does not exist here: ./workspace is used."""
    elsewhere = tmp_path / "other-machine" / "workspace"
    config = Config(workspace=str(elsewhere), crop_workers=1)
    checkpoint = _checkpoint(tmp_path / "foreign.pt", config)
    monkeypatch.chdir(tmp_path)
    _, err = _evaluate(capsys, "--checkpoint", str(checkpoint), "--lfw", str(raw_faces))
    assert f"in {tmp_path / 'workspace' / 'cropped' / 'eval-faces'}:" in err
    assert not elsewhere.exists()
