"""Per-epoch tasks: an epoch's triplets or PK batches, and one epoch of training."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from facenet_core.config import Config
from facenet_core.config.stages import stage_values
from facenet_core.data import pk_batches as pk_core
from facenet_core.data import triplets as triplets_core
from facenet_core.data.epoch_index import indexed_manifest
from facenet_core.data.manifest import read_manifest_labels
from facenet_core.fileio import sha256_file
from facenet_core.tracking import metrics as tracking_metrics
from facenet_core.tracking.system import system_metrics
from facenet_core.train import engine
from facenet_core.train.checkpoints import pruned_by_retention
from facenet_core.train.launch import run_train_epoch
from facenet_core.workspace import RunLayout, Workspace
from tasks.caching import file_fingerprint, stage_task
from tasks.progress import ProgressArtifact
from tasks.results import EpochCheckpoint, EpochIndexFile, ManifestFile, PKBatchesFile, TripletsFile
from tasks.tracking import TrackingRun

# Run tag saying an epoch resumed from a file without optimiser state (its optimiser started fresh).
TAG_FRESH_OPTIMIZER = "facenet.optimizer_started_fresh"


def tag_run(tracking: TrackingRun, key: str, value: str) -> None:
    """Set a tag on the tracking run; an unreachable MLflow only costs a warning (the log has it too)."""
    if not tracking.run_id:
        return
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking.tracking_uri).set_tag(tracking.run_id, key, value[:5000])
    except Exception as error:  # tracking outages never stop training
        get_run_logger().warning("could not tag MLflow run %s with %s: %s", tracking.run_id, key, error)


def triplets_key(
    manifest: ManifestFile, epoch: int, params: triplets_core.TripletParams, reuse: Path | None
) -> dict[str, Any]:
    """What an epoch's triplets depend on: the manifest's content, the epoch, the sampling parameters
    and the content of a given triplets file."""
    return {
        "manifest": manifest.fingerprint,
        "epoch": epoch,
        "params": asdict(params),
        "reused": file_fingerprint(reuse),
    }


@stage_task(
    stage="triplets",
    version=triplets_core.STAGE_VERSION,
    key=triplets_key,
    outputs=lambda triplets: [triplets.path],
    task_run_name="triplets-epoch-{epoch}",
)
def draw_triplets(
    workspace: Workspace,
    manifest: ManifestFile,
    epoch: int,
    params: triplets_core.TripletParams,
    out_path: Path,
    reuse: Path | None = None,
) -> TripletsFile:
    """Triplets of one epoch, drawn from (seed, epoch) into `out_path`, or `reuse` (the seed's
    --training_triplets_path) once checked to index this manifest."""
    if reuse is not None:
        count = len(triplets_core.load_triplets(reuse, manifest.fingerprint))
        return TripletsFile(reuse, sha256_file(reuse), count)
    count = triplets_core.draw_and_save(read_manifest_labels(manifest.path), epoch, params, out_path)
    return TripletsFile(out_path, sha256_file(out_path), count)


def pk_batches_key(manifest: ManifestFile, epoch: int, params: pk_core.PKParams) -> dict[str, Any]:
    """What an epoch's PK batches depend on: the manifest's content, the epoch and P, K, seed, iterations."""
    return {"manifest": manifest.fingerprint, "epoch": epoch, "params": asdict(params)}


@stage_task(
    stage="pk-batches",
    version=pk_core.STAGE_VERSION,
    key=pk_batches_key,
    outputs=lambda batches: [batches.path],
    task_run_name="pk-batches-epoch-{epoch}",
)
def draw_pk_batches(
    workspace: Workspace, manifest: ManifestFile, epoch: int, params: pk_core.PKParams, out_path: Path
) -> PKBatchesFile:
    """PK batches of one epoch, drawn from (seed, epoch) into `out_path`."""
    count = pk_core.draw_and_save(read_manifest_labels(manifest.path), epoch, params, out_path)
    return PKBatchesFile(out_path, sha256_file(out_path), count)


def step_progress(artifact: ProgressArtifact, cfg: Config) -> engine.MetricsCallback:
    """A metrics callback moving the run's progress artifact to global step / (epochs x steps per epoch)."""
    total = cfg.epochs * cfg.iterations_per_epoch

    def on_step(metrics: dict[str, float], step: int) -> None:
        epoch = max(step - 1, 0) // cfg.iterations_per_epoch  # step counts steps done: ipe ends epoch 0
        in_epoch = step - epoch * cfg.iterations_per_epoch
        description = f"epoch {epoch + 1}/{cfg.epochs}, step {in_epoch}/{cfg.iterations_per_epoch}"
        artifact.update(100.0 * step / total, description)

    return on_step


def train_key(
    config: Config, epoch: int, epoch_index: EpochIndexFile, checkpoint_in: EpochCheckpoint | None
) -> dict[str, Any]:
    """What an epoch's weights depend on: the config's train-epoch fields, the epoch, the content of
    its triplets or PK batches, the manifest they index (the images behind the rows) and the content
    of the checkpoint it starts from."""
    return {
        "config": stage_values(config, "train-epoch"),
        "epoch": epoch,
        "triplets": epoch_index.sha256,  # the name of the first version
        "manifest": indexed_manifest(epoch_index.path),
        "checkpoint_in": checkpoint_in.sha256 if checkpoint_in else None,
    }


@stage_task(
    stage="train-epoch",
    version=engine.STAGE_VERSION,
    key=train_key,
    outputs=lambda trained: [trained.path] if trained.sha256 else [],
    allow_missing=pruned_by_retention,
    task_run_name="train-epoch-{epoch}",
)
def train_epoch_task(
    workspace: Workspace,
    config: Config,
    epoch: int,
    epoch_index: EpochIndexFile,
    checkpoint_in: EpochCheckpoint | None,
    layout: RunLayout,
    already_trained: bool = False,
    tracking: TrackingRun | None = None,
    progress_artifact: str | None = None,
) -> EpochCheckpoint:
    """One epoch of training (torchrun when num_processes > 1) on `epoch_index`, the epoch's triplets
    or PK batches as config.sampling says; returns its checkpoint.

    `already_trained`: the run folder holds this epoch already (facenet_core.train.plan: the run went
    on past it, outside this cache): its files are taken as they are, nothing is trained again.
    `progress_artifact`: id of the flow run's progress artifact, moved as steps are logged."""
    if already_trained:
        return trained_epoch(layout, epoch)
    show_progress = step_progress(ProgressArtifact(progress_artifact), config) if progress_artifact else None
    where = {"run_dir": layout.run_dir, "tracking_uri": tracking.tracking_uri} if tracking else {}

    def on_metrics(metrics: dict[str, float], step: int) -> None:
        if tracking:
            named = {f"train/{name}": value for name, value in metrics.items()}
            tracking_metrics.log_step_metrics(tracking.run_id, named, step, **where)
        if show_progress:
            show_progress(metrics, step)

    run_id = tracking.run_id if tracking else None
    with system_metrics(run_id, where.get("tracking_uri"), enabled=config.log_system_metrics):
        checkpoint = run_train_epoch(
            config,
            epoch,
            epoch_index.path,
            checkpoint_in.path if checkpoint_in else None,
            layout.run_dir,
            on_metrics=on_metrics,
        )
    summary = engine.read_epoch_summary(checkpoint)
    if summary.get("optimizer_state") == "fresh":
        note = f"epoch {epoch}: {summary['optimizer_state_note']}"
        get_run_logger().warning(note)
        if tracking:
            tag_run(tracking, TAG_FRESH_OPTIMIZER, note)
    if tracking:
        tracking_metrics.log_epoch_metrics(tracking.run_id, epoch, "epoch", summary, **where)
    return EpochCheckpoint(checkpoint, sha256_file(checkpoint), epoch, summary)


def trained_epoch(layout: RunLayout, epoch: int) -> EpochCheckpoint:
    """An epoch the run folder already holds, as its files say (no hash when retention deleted its weights)."""
    path = layout.epoch_checkpoint(epoch)
    summary_file = engine.summary_path(path)
    summary = engine.read_epoch_summary(path) if summary_file.is_file() else {}
    get_run_logger().info("epoch %d: trained already in %s, taken as it is", epoch, layout.run_dir)
    return EpochCheckpoint(path, sha256_file(path) if path.is_file() else None, epoch, summary)
