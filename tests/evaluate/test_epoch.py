"""evaluate_checkpoint: one epoch of a run on one set, its report, and best.pt/last.pt kept current."""

from __future__ import annotations

from pathlib import Path

import torch

from facenet_core.config.schema import Config, EvalSet
from facenet_core.evaluate.epoch import evaluate_checkpoint
from facenet_core.models import create_model
from facenet_core.train.checkpoints import save_checkpoint
from facenet_core.workspace import RunLayout


def model_state(epoch: int) -> dict:
    torch.manual_seed(epoch)
    model = create_model("resnet18", 8)
    return {
        "epoch": epoch,
        "model_architecture": "resnet18",
        "embedding_dimension": 8,
        "model_state_dict": model.state_dict(),
    }


def stored(path: Path, key: str):
    return torch.load(path, weights_only=True)[key]


def test_each_epoch_reported_and_the_best_kept_under_the_same_settings(tmp_path, face_tree, view2_file):
    layout = RunLayout(tmp_path / "run")
    for epoch in (0, 1):
        save_checkpoint(layout.epoch_checkpoint(epoch), model_state(epoch))
    save_checkpoint(layout.last, model_state(1))
    faces = EvalSet(name="faces", root=str(face_tree), pairs=str(view2_file))
    model = {"model_architecture": "resnet18", "embedding_dimension": 8, "image_size": 32}
    cfg = Config(eval_sets=[faces], device="cpu", num_workers=0, **model)

    def evaluate(config: Config, epoch: int):
        checkpoint = layout.epoch_checkpoint(epoch)
        return evaluate_checkpoint(
            config, epoch=epoch, checkpoint=checkpoint, eval_set=faces, eval_set_fingerprint="f" * 64, layout=layout
        )

    first, second = evaluate(cfg, 0), evaluate(cfg, 1)
    assert second.skipped is None and second.reports.roc == layout.reports / "roc_faces_epoch_1.png"
    assert second.reports.roc.is_file() and second.reports.metrics.is_file()
    assert second.evaluation.metrics["num_pairs"] == 20
    assert second.evaluation.checkpoint == str(layout.epoch_checkpoint(1))
    assert [row["epoch"] for row in second.history] == [0, 1]
    expected = max((first, second), key=lambda e: (e.evaluation.metrics["accuracy"], -e.evaluation.epoch))
    assert second.best_epoch == expected.evaluation.epoch == stored(layout.best, "epoch")
    threshold = second.evaluation.metrics["best_distance_threshold"]
    assert stored(layout.last, "best_distance_threshold") == threshold

    flipped = evaluate(cfg.model_copy(update={"flip_tta": True}), 1)  # an evaluation parameter changed
    assert [row["epoch"] for row in flipped.history] == [1]  # epoch 0's row was measured otherwise
    assert flipped.best_epoch == 1 == stored(layout.best, "epoch")


def test_an_epoch_deleted_by_retention_is_skipped(tmp_path, face_tree, view2_file):
    layout = RunLayout(tmp_path / "run")
    save_checkpoint(layout.last, model_state(1))
    faces = EvalSet(name="faces", root=str(face_tree), pairs=str(view2_file))
    skipped = evaluate_checkpoint(
        Config(eval_sets=[faces]),
        epoch=0,
        checkpoint=layout.epoch_checkpoint(0),
        eval_set=faces,
        eval_set_fingerprint="f" * 64,
        layout=layout,
    )
    assert "checkpoint_retention" in skipped.skipped and "epoch_0.pt" in skipped.skipped
    assert skipped.reports is None and skipped.evaluation.metrics == {} and skipped.best_epoch is None
    assert not layout.reports.exists() and not layout.best.exists()
