"""`facenet evaluate` on a seed-style checkpoint and a tiny image tree."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facenet_core.config import EvalSet
from facenet_core.evaluate.report import evaluate_model
from facenet_core.models import create_model
from flows.cli import main


@pytest.fixture
def seed_checkpoint(tmp_path):
    """A checkpoint as the seed wrote it: wrapper prefix `model.`, numpy float64 threshold, no extras."""
    torch.manual_seed(0)
    model = create_model("resnet18", 16)
    path = tmp_path / "model_resnet18_triplet.pt"
    torch.save(
        {
            "epoch": 7,
            "embedding_dimension": 16,
            "batch_size_training": 8,
            "model_state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "model_architecture": "resnet18",
            "optimizer_model_state_dict": {},
            "best_distance_threshold": np.float64(1.1),
        },
        path,
    )
    return path, model.eval()


@pytest.mark.slow
def test_evaluate_seed_checkpoint_prints_accuracy_first(seed_checkpoint, face_tree, view2_file, tmp_path, capsys):
    path, model = seed_checkpoint
    common = ["--checkpoint", str(path), "--lfw", str(face_tree), "--cropped", "--pairs", str(view2_file)]
    common += ["--image_size", "32"]
    assert main(["evaluate", *common, "--lfw-batch-size", "7", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("accuracy ")
    assert lines[-1].split()[:8] == ["pairs", "20", "(10", "same)", "in", "10", "fold(s),", "0"]

    reports = tmp_path / "reports"
    assert main(["evaluate", *common, "--json", "--report_dir", str(reports)]) == 0
    printed = json.loads(capsys.readouterr().out)
    direct = evaluate_model(
        model,
        EvalSet(name="faces", root=str(face_tree), pairs=str(view2_file)),
        image_size=32,
        mean=[0.6071, 0.4609, 0.3944],
        std=[0.2457, 0.2175, 0.2129],
        batch_size=200,
        device="cpu",
    )
    assert printed == pytest.approx(direct.metrics)
    assert (reports / "roc_faces_epoch_7.png").is_file() and (reports / "metrics.parquet").is_file()


def test_evaluate_errors_name_the_input(seed_checkpoint, face_tree, tmp_path, capsys):
    path, _ = seed_checkpoint
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--lfw", str(face_tree)]) == 2
    assert "none.pt" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(path), "--lfw", str(face_tree), "--device", "cpu"]) == 2
    # The default pairs file beside the folder is absent: named before anything is cropped.
    assert "pairs.txt" in capsys.readouterr().err
    assert not (tmp_path / "workspace").exists() and not Path("workspace").exists()
