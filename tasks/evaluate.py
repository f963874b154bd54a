"""Evaluation task: one checkpoint on one evaluation set, reports and tracked metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from facenet_core.config import Config
from facenet_core.config.stages import STAGE_FIELDS
from facenet_core.devices import resolve_device
from facenet_core.evaluate import report as report_core
from facenet_core.fileio import sha256_json
from facenet_core.tracking.registry import selection_eval_set
from facenet_core.train.checkpoints import load_model_from_checkpoint, pruned_by_retention, record_evaluation
from tasks.caching import stage_task

EVAL_FIELDS = STAGE_FIELDS["evaluate"]


def slug(name: str) -> str:
    """An evaluation set's name as it reads in run names and artifact keys (lfw_view1 -> lfw-view1)."""
    return name.lower().replace("_", "-").replace(".", "-")


def _settings(config: dict[str, Any], eval_set: dict[str, Any], eval_set_fingerprint: str) -> dict[str, Any]:
    """What an evaluation's numbers depend on besides the weights: the set and the evaluation parameters."""
    params = {name: config[name] for name in EVAL_FIELDS}
    return {"eval_set": eval_set, "eval_set_fingerprint": eval_set_fingerprint, "params": params}


@stage_task(
    stage="evaluate",
    version=report_core.STAGE_VERSION,
    key_parts=lambda p: {
        **_settings(p["config"], p["eval_set"], p["eval_set_fingerprint"]),
        "checkpoint": p["checkpoint_sha256"],
        "epoch": p["epoch"],
    },
    outputs=lambda r: [r["roc_plot"]] if "roc_plot" in r else [],
    task_run_name=lambda parameters: f"evaluate-{slug(parameters['eval_set']['name'])}-epoch-{parameters['epoch']}",
)
def evaluate_epoch(
    workspace: str,
    config: dict[str, Any],
    epoch: int,
    checkpoint: str,
    checkpoint_sha256: str,
    eval_set: dict[str, Any],
    eval_set_fingerprint: str,
    run_dir: str,
    tracking: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Embed the set's images once, compute the seed's metrics, write plots, log to MLflow.

    An epoch whose weights `checkpoint_retention` deleted cannot be evaluated again (after an
    evaluation parameter changed): the result then says so under `skipped`, with no metrics.
    """
    if pruned_by_retention(checkpoint):
        reason = f"weights of epoch {epoch} were deleted by checkpoint_retention ({checkpoint})"
        get_run_logger().warning("not evaluated on %s: %s", eval_set["name"], reason)
        return {"epoch": epoch, "eval_set": eval_set["name"], "metrics": {}, "skipped": reason}
    cfg = Config.model_validate(config)
    device = str(resolve_device(cfg.device))
    model, _ = load_model_from_checkpoint(checkpoint, device=device)
    result = report_core.evaluate_model(
        model,
        eval_set,
        image_size=cfg.image_size,
        mean=cfg.normalize_mean,
        std=cfg.normalize_std,
        batch_size=cfg.eval_batch_size,
        device=device,
        distance_metric=cfg.distance_metric,
        flip_tta=cfg.flip_tta,
        num_workers=cfg.num_workers,
    )
    report_dir = Path(run_dir) / "reports"
    settings = sha256_json(_settings(config, eval_set, eval_set_fingerprint))[:12]
    written = report_core.write_epoch_report(report_dir, epoch, eval_set["name"], result, settings)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    # Only epochs evaluated under these settings compete: after an evaluation parameter changes,
    # the epochs not yet evaluated again (or deleted by retention) keep rows of the old settings.
    history = report_core.comparable_history(report_core.read_metrics_table(report_dir), eval_set["name"], settings)
    if eval_set["name"] == selection_eval_set(cfg).name and Path(checkpoint).parent == Path(run_dir) / "checkpoints":
        _record_best(cfg, Path(checkpoint), epoch, history)
    create_table_artifact(
        key=f"metrics-{slug(eval_set['name'])}",
        table=history.to_dict("records"),
        description=f"Metrics per epoch on {eval_set['name']} ({eval_set['protocol']}), up to epoch {epoch}",
    )
    if tracking:
        from facenet_core.tracking import metrics as tracking_metrics

        where = {"run_dir": run_dir, "tracking_uri": tracking["tracking_uri"]}
        tracking_metrics.log_epoch_metrics(tracking["run_id"], epoch, eval_set["name"], metrics, **where)
        reports = [written.roc, written.distances, written.accuracy, written.metrics]
        tracking_metrics.log_artifacts(tracking["run_id"], reports, artifact_path="reports", **where)
    return {
        "epoch": epoch,
        "eval_set": eval_set["name"],
        "metrics": metrics,
        "metrics_table": str(written.metrics),
        "roc_plot": str(written.roc),
        "distance_plot": str(written.distances),
        "accuracy_plot": str(written.accuracy),
    }


def _record_best(cfg: Config, checkpoint: Path, epoch: int, history) -> None:
    """Keep the run's best.pt and the evaluated threshold in last.pt current."""
    best_epoch = int(history.sort_values([cfg.selection_metric, "epoch"], ascending=[False, True]).iloc[0]["epoch"])
    threshold = float(history[history["epoch"] == epoch]["best_distance_threshold"].iloc[0])
    record_evaluation(checkpoint.parent, epoch, threshold, is_best=best_epoch == epoch)
