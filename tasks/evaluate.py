"""Evaluation task: one checkpoint on one evaluation set, its report, table artifact and tracked metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from facenet_core.config import Config, EvalSet
from facenet_core.evaluate import report, selection
from facenet_core.evaluate.epoch import EpochEvaluation, evaluate_checkpoint
from facenet_core.tracking import metrics as tracking_metrics
from facenet_core.workspace import RunLayout, Workspace
from tasks.caching import stage_task
from tasks.tracking import TrackingRun


def slug(name: str) -> str:
    """An evaluation set's name as it reads in run names and artifact keys (lfw_view1 -> lfw-view1)."""
    return name.lower().replace("_", "-").replace(".", "-")


def evaluation_key(
    config: Config, eval_set: EvalSet, eval_set_fingerprint: str, checkpoint_sha256: str | None, epoch: int
) -> dict[str, Any]:
    """What an evaluation depends on: the evaluation settings (the set, its fingerprint, the config's
    evaluate fields), the checkpoint's content and its epoch."""
    settings = selection.evaluation_settings(config, eval_set, eval_set_fingerprint)
    return {**settings, "checkpoint": checkpoint_sha256, "epoch": epoch}


def evaluation_run_name(parameters: dict[str, Any]) -> str:
    """evaluate-<set>-epoch-<e>"""
    return f"evaluate-{slug(parameters['eval_set'].name)}-epoch-{parameters['epoch']}"


@stage_task(
    stage="evaluate",
    version=report.STAGE_VERSION,
    key=evaluation_key,
    outputs=lambda evaluated: [evaluated.reports.roc] if evaluated.reports else [],
    task_run_name=evaluation_run_name,
)
def evaluate_epoch(
    workspace: Workspace,
    config: Config,
    epoch: int,
    checkpoint: Path,
    checkpoint_sha256: str | None,
    eval_set: EvalSet,
    eval_set_fingerprint: str,
    layout: RunLayout,
    tracking: TrackingRun | None = None,
) -> EpochEvaluation:
    """Evaluate one epoch's checkpoint on one set (`evaluate_checkpoint`), publish the set's metrics
    per epoch as a table artifact and log the metrics and report files to the tracking run (buffered
    under the run folder while MLflow is unreachable). An epoch whose weights checkpoint_retention
    deleted comes back `skipped`, with a warning."""
    evaluated = evaluate_checkpoint(
        config,
        epoch=epoch,
        checkpoint=checkpoint,
        eval_set=eval_set,
        eval_set_fingerprint=eval_set_fingerprint,
        layout=layout,
    )
    if evaluated.skipped:
        get_run_logger().warning("not evaluated on %s: %s", eval_set.name, evaluated.skipped)
        return evaluated
    create_table_artifact(
        key=f"metrics-{slug(eval_set.name)}",
        table=list(evaluated.history),
        description=f"Metrics per epoch on {eval_set.name} ({eval_set.protocol}), up to epoch {epoch}",
    )
    if tracking is not None:
        where = {"run_dir": layout.run_dir, "tracking_uri": tracking.tracking_uri}
        tracking_metrics.log_epoch_metrics(tracking.run_id, epoch, eval_set.name, evaluated.evaluation.metrics, **where)
        written = evaluated.reports
        files = [written.roc, written.distances, written.accuracy, written.metrics]
        tracking_metrics.log_artifacts(tracking.run_id, files, artifact_path="reports", **where)
    return evaluated
