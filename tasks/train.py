"""Per-epoch tasks: triplets and one epoch of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger

from facenet_core.config import Config
from facenet_core.config.stages import STAGE_FIELDS, stage_values
from facenet_core.data import triplets as triplets_core
from facenet_core.data.manifest import read_manifest
from facenet_core.fileio import sha256_file
from facenet_core.tracking import metrics as tracking_metrics
from facenet_core.tracking.system import system_metrics
from facenet_core.train import engine
from facenet_core.train.checkpoints import pruned_by_retention
from facenet_core.train.launch import run_train_epoch
from tasks.caching import file_fingerprint, stage_task
from tasks.progress import ProgressArtifact

TRIPLET_FIELDS = STAGE_FIELDS["triplets"]
# Run tag saying an epoch resumed from a file without optimiser state (its optimiser started fresh).
TAG_FRESH_OPTIMIZER = "facenet.optimizer_started_fresh"


def tag_run(tracking: dict[str, str | None], key: str, value: str) -> None:
    """Set a tag on the tracking run; an unreachable MLflow only costs a warning (the log has it too)."""
    if not tracking.get("run_id"):
        return
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking["tracking_uri"]).set_tag(tracking["run_id"], key, value[:5000])
    except Exception as error:  # tracking outages never stop training
        get_run_logger().warning("could not tag MLflow run %s with %s: %s", tracking["run_id"], key, error)


@stage_task(
    stage="triplets",
    version=triplets_core.STAGE_VERSION,
    key_parts=lambda p: {
        "manifest": p["manifest_fingerprint"],
        "epoch": p["epoch"],
        "params": p["params"],
        "reused": file_fingerprint(p["reuse_path"]),
    },
    outputs=lambda r: [r["triplets"]],
    task_run_name="triplets-epoch-{epoch}",
)
def make_triplets(
    workspace: str,
    manifest_path: str,
    manifest_fingerprint: str,
    epoch: int,
    params: dict[str, int],
    out_path: str,
    reuse_path: str | None = None,
) -> dict[str, Any]:
    """Triplets of one epoch, generated from (seed, epoch) or taken from --training_triplets_path."""
    if reuse_path:
        triplets_core.load_triplets(reuse_path, manifest_fingerprint)
        return {"triplets": reuse_path, "sha256": sha256_file(reuse_path)}
    manifest = read_manifest(manifest_path)
    triplets = triplets_core.generate_triplets(manifest.labels, epoch=epoch, **params)
    meta = {"manifest_fingerprint": manifest_fingerprint, "epoch": epoch, **params}
    triplets_core.save_triplets(out_path, triplets, meta)
    return {"triplets": out_path, "sha256": sha256_file(out_path), "count": int(len(triplets))}


def step_progress(artifact: ProgressArtifact, cfg: Config) -> engine.MetricsCallback:
    """A metrics callback moving the run's progress artifact to global step / (epochs x steps per epoch)."""
    total = cfg.epochs * cfg.iterations_per_epoch

    def on_step(metrics: dict[str, float], step: int) -> None:
        epoch = max(step - 1, 0) // cfg.iterations_per_epoch  # step counts steps done: ipe ends epoch 0
        in_epoch = step - epoch * cfg.iterations_per_epoch
        description = f"epoch {epoch + 1}/{cfg.epochs}, step {in_epoch}/{cfg.iterations_per_epoch}"
        artifact.update(100.0 * step / total, description)

    return on_step


def training_key_fields(config: dict[str, Any]) -> dict[str, Any]:
    """Config values that change what an epoch of training produces."""
    return stage_values(Config.model_validate(config), "train-epoch")


@stage_task(
    stage="train-epoch",
    version=engine.STAGE_VERSION,
    key_parts=lambda p: {
        "config": training_key_fields(p["config"]),
        "epoch": p["epoch"],
        "triplets": p["triplets_sha256"],
        "checkpoint_in": p["checkpoint_in_sha256"],
    },
    outputs=lambda r: [r["checkpoint"]],
    allow_missing=pruned_by_retention,
    task_run_name="train-epoch-{epoch}",
)
def train_epoch(
    workspace: str,
    config: dict[str, Any],
    epoch: int,
    triplets_path: str,
    triplets_sha256: str,
    checkpoint_in: str | None,
    checkpoint_in_sha256: str | None,
    run_dir: str,
    tracking: dict[str, str] | None = None,
    progress_artifact: str | None = None,
) -> dict[str, Any]:
    """One epoch of training (torchrun when num_processes > 1); returns its checkpoint.

    `progress_artifact`: id of the flow run's progress artifact, moved as steps are logged."""
    cfg = Config.model_validate(config)
    show_progress = step_progress(ProgressArtifact(progress_artifact), cfg) if progress_artifact else None

    def on_metrics(metrics: dict[str, float], step: int) -> None:
        if tracking:
            named = {f"train/{name}": value for name, value in metrics.items()}
            tracking_metrics.log_step_metrics(
                tracking["run_id"], named, step, run_dir=run_dir, tracking_uri=tracking["tracking_uri"]
            )
        if show_progress:
            show_progress(metrics, step)

    tracked = tracking or {}
    with system_metrics(tracked.get("run_id"), tracked.get("tracking_uri"), enabled=cfg.log_system_metrics):
        checkpoint = run_train_epoch(
            cfg, epoch, Path(triplets_path), checkpoint_in, Path(run_dir), on_metrics=on_metrics
        )
    summary = engine.read_epoch_summary(checkpoint)
    if summary.get("optimizer_state") == "fresh":
        note = f"epoch {epoch}: {summary['optimizer_state_note']}"
        get_run_logger().warning(note)
        if tracking:
            tag_run(tracking, TAG_FRESH_OPTIMIZER, note)
    if tracking:
        tracking_metrics.log_epoch_metrics(
            tracking["run_id"], epoch, "epoch", summary, run_dir=run_dir, tracking_uri=tracking["tracking_uri"]
        )
    return {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "epoch": epoch, "summary": summary}
