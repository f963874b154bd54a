"""The register task's body before it reaches MLflow: best.pt made the registered epoch, and a run
that started while MLflow was unreachable refused with what to do."""

from __future__ import annotations

import pytest
import torch
from prefect.logging import disable_run_logger

from facenet_core.config import Config, EvalSet
from facenet_core.evaluate.selection import Evaluation
from facenet_core.train.checkpoints import save_checkpoint
from facenet_core.workspace import RunLayout
from tasks.tracking import TrackingRun, register_model

LFW = EvalSet(name="lfw", root="/data/lfw", pairs="/data/pairs.txt")


def test_register_promotes_the_best_epoch_then_needs_a_tracking_run(tmp_path):
    layout = RunLayout(tmp_path / "run")
    for epoch in range(3):
        save_checkpoint(layout.epoch_checkpoint(epoch), {"epoch": epoch, "model_state_dict": {"w": torch.zeros(1)}})
    save_checkpoint(layout.best, {"epoch": 2, "model_state_dict": {"w": torch.zeros(1)}})  # other settings' best

    def evaluated(epoch: int, accuracy: float) -> Evaluation:
        metrics = {"accuracy": accuracy, "best_distance_threshold": 1.0 + epoch}
        return Evaluation(epoch, "lfw", "f" * 64, str(layout.epoch_checkpoint(epoch)), metrics)

    with disable_run_logger(), pytest.raises(RuntimeError, match="MLflow was unreachable when this run started"):
        register_model.fn(
            config=Config(eval_sets=[LFW]),
            tracking=TrackingRun(run_id=None, tracking_uri="http://127.0.0.1:9"),
            evaluations=[evaluated(0, 0.8), evaluated(1, 0.9), evaluated(2, 0.9)],
            eval_sets=[LFW],
            manifest_fingerprint="m" * 64,
            run_dir=layout.run_dir,
        )
    best = torch.load(layout.best, weights_only=True)
    assert (best["epoch"], best["best_distance_threshold"]) == (1, 2.0)  # ties go to the earlier epoch
