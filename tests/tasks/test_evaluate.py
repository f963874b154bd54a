"""The evaluate task: its cache key and run name, and its body around the one core call (the table
artifact, the tracked metrics buffered under the run folder while MLflow is unreachable, the output
record a later cache hit is checked against)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.logging import disable_run_logger

from facenet_core.config import Config, EvalSet
from facenet_core.evaluate import report
from facenet_core.evaluate.epoch import EpochEvaluation
from facenet_core.evaluate.report import ReportPaths
from facenet_core.evaluate.selection import Evaluation
from facenet_core.fileio import sha256_file
from facenet_core.tracking.metrics import buffer_path
from facenet_core.workspace import RunLayout, Workspace
from tasks import evaluate as evaluate_tasks
from tasks.caching import output_record_path, stage_key
from tasks.evaluate import evaluate_epoch, evaluation_key, evaluation_run_name
from tasks.tracking import TrackingRun

LFW = EvalSet(name="lfw_view2", root="/data/lfw", pairs="/data/pairs.txt")
FINGERPRINT = "f" * 64


def test_key_holds_the_evaluation_settings_the_checkpoint_and_the_epoch():
    config = Config(eval_sets=[LFW])
    key = evaluation_key(config, LFW, FINGERPRINT, "c" * 64, 3)
    assert key == {
        "eval_set": LFW.model_dump(mode="json"),
        "eval_set_fingerprint": FINGERPRINT,
        "params": {
            "distance_metric": "euclidean",
            "flip_tta": False,
            "image_size": 140,
            "normalize_mean": [0.6071, 0.4609, 0.3944],
            "normalize_std": [0.2457, 0.2175, 0.2129],
        },
        "checkpoint": "c" * 64,
        "epoch": 3,
    }
    faster = config.model_copy(update={"eval_batch_size": 7, "num_workers": 0, "learning_rate": 0.01})
    assert evaluation_key(faster, LFW, FINGERPRINT, "c" * 64, 3) == key
    assert evaluation_key(config.model_copy(update={"flip_tta": True}), LFW, FINGERPRINT, "c" * 64, 3) != key
    assert evaluation_run_name({"eval_set": LFW, "epoch": 3}) == "evaluate-lfw-view2-epoch-3"


def written_reports(folder: Path) -> ReportPaths:
    folder.mkdir(parents=True)
    paths = ReportPaths(*(folder / name for name in ("metrics.parquet", "roc.png", "accuracy.png", "distances.png")))
    for path in paths:
        path.write_bytes(path.name.encode())
    return paths


@pytest.fixture
def body(tmp_path, monkeypatch):
    """Runs the task's body with `evaluate_checkpoint` giving `outcome`; returns the core call's
    keywords, the table artifacts made, the result and where they went."""
    workspace, layout = Workspace(tmp_path / "ws"), RunLayout(tmp_path / "run")

    def run(outcome: EpochEvaluation, tracking: TrackingRun | None) -> dict:
        calls, artifacts = [], []
        monkeypatch.setattr(evaluate_tasks, "evaluate_checkpoint", lambda config, **kw: calls.append(kw) or outcome)
        monkeypatch.setattr(evaluate_tasks, "create_table_artifact", lambda **kw: artifacts.append(kw))
        config = Config(eval_sets=[LFW])
        parameters = {
            "workspace": workspace,
            "config": config,
            "epoch": 2,
            "checkpoint": layout.epoch_checkpoint(2),
            "checkpoint_sha256": "c" * 64,
            "eval_set": LFW,
            "eval_set_fingerprint": FINGERPRINT,
            "layout": layout,
        }
        with disable_run_logger():
            result = evaluate_epoch.fn(**parameters, tracking=tracking)
        key = stage_key("evaluate", report.STAGE_VERSION, evaluation_key(config, LFW, FINGERPRINT, "c" * 64, 2))
        record = json.loads(output_record_path(workspace, key).read_text())["files"]
        return {"calls": calls, "artifacts": artifacts, "result": result, "record": record, "layout": layout}

    return run


def test_body_publishes_the_history_and_buffers_tracking_while_mlflow_is_down(tmp_path, body):
    reports = written_reports(tmp_path / "run" / "reports")
    history = ({"epoch": 1, "set": "lfw_view2", "accuracy": 0.7}, {"epoch": 2, "set": "lfw_view2", "accuracy": 0.9})
    evaluation = Evaluation(
        2, "lfw_view2", FINGERPRINT, str(tmp_path / "run/checkpoints/epoch_2.pt"), {"accuracy": 0.9}
    )
    outcome = EpochEvaluation(evaluation, reports=reports, history=history, best_epoch=2)
    ran = body(outcome, TrackingRun(run_id=None, tracking_uri="http://127.0.0.1:9"))

    assert ran["result"] is outcome
    [call] = ran["calls"]
    assert call["epoch"] == 2 and call["eval_set"] == LFW and call["layout"] == ran["layout"]
    [artifact] = ran["artifacts"]
    assert artifact["key"] == "metrics-lfw-view2" and artifact["table"] == list(history)
    assert artifact["description"] == "Metrics per epoch on lfw_view2 (kfold10), up to epoch 2"
    metrics, files = (json.loads(line) for line in buffer_path(ran["layout"].run_dir).read_text().splitlines())
    assert (metrics["metrics"], metrics["step"]) == ({"lfw_view2/accuracy": 0.9}, 2)
    assert files["artifact_path"] == "reports"
    assert files["paths"] == [
        str(p.resolve()) for p in (reports.roc, reports.distances, reports.accuracy, reports.metrics)
    ]
    assert ran["record"] == {str(reports.roc.resolve()): sha256_file(reports.roc)}  # what a cache hit checks


def test_a_skipped_epoch_publishes_and_logs_nothing(tmp_path, body):
    skipped = Evaluation(2, "lfw_view2", FINGERPRINT, str(tmp_path / "run/checkpoints/epoch_2.pt"))
    outcome = EpochEvaluation(skipped, skipped="weights of epoch 2 were deleted by checkpoint_retention")
    ran = body(outcome, TrackingRun(run_id=None, tracking_uri="http://127.0.0.1:9"))
    assert ran["result"] is outcome and ran["artifacts"] == [] and ran["record"] == {}
    assert not buffer_path(ran["layout"].run_dir).exists()
