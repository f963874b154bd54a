"""facenet-train: download -> crop -> manifest -> per epoch (triplets | PK batches -> train -> evaluate) -> register."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run

from facenet_core.config import Config, load_config, save_config
from facenet_core.data.pk_batches import PKParams
from facenet_core.data.triplets import TripletParams
from facenet_core.evaluate.epoch import EpochEvaluation
from facenet_core.evaluate.selection import Evaluation
from facenet_core.fileio import sha256_file
from facenet_core.train.plan import RunPlan, plan_run
from facenet_core.workspace import Workspace
from flows.data import DataPrep, TrainingData, eval_set_images, training_manifest
from flows.overrides import ConfigOverrides, overrides_dict
from flows.stages import StageLog
from tasks import evaluate as evaluate_tasks
from tasks import tracking as tracking_tasks
from tasks.progress import ProgressArtifact
from tasks.results import EpochCheckpoint
from tasks.tracking import TrackingRun
from tasks.train import draw_pk_batches, draw_triplets, train_epoch_task

DEFAULT_PRESET = "demo"


def start_checkpoint(plan: RunPlan) -> EpochCheckpoint | None:
    """The checkpoint the run's first epoch starts from (the config's resume_path), hashed."""
    path = plan.start_checkpoint
    return None if path is None else EpochCheckpoint(path, sha256_file(path), plan.began - 1)


def epoch_index_drawer(cfg: Config, ws: Workspace, data: TrainingData, plan: RunPlan) -> Callable[[int], PrefectFuture]:
    """epoch -> the submitted task drawing that epoch's triplets or PK batches, as cfg.sampling says."""
    if cfg.sampling == "pk":
        draw_pk = draw_pk_batches.with_options(result_storage=ws.prefect_results)
        pk_params = PKParams.from_config(cfg)
        return lambda epoch: draw_pk.submit(
            workspace=ws, manifest=data.manifest, epoch=epoch, params=pk_params, out_path=plan.layout.pk_batches(epoch)
        )
    draw = draw_triplets.with_options(result_storage=ws.prefect_results)
    params = TripletParams.from_config(cfg)

    def triplets_for(epoch: int) -> PrefectFuture:
        """The seed's --training_triplets_path feeds only the run's first epoch; later ones are drawn."""
        reuse = Path(cfg.training_triplets_path) if cfg.training_triplets_path and epoch == plan.began else None
        out = plan.layout.triplets(epoch)
        return draw.submit(workspace=ws, manifest=data.manifest, epoch=epoch, params=params, out_path=out, reuse=reuse)

    return triplets_for


def train_epochs(
    cfg: Config, ws: Workspace, data: TrainingData, plan: RunPlan, stages: StageLog, tracking: TrackingRun
) -> Iterator[EpochCheckpoint]:
    """The run's epochs in order, each trained on its triplets or PK batches (Cached when done before;
    taken from the run folder when trained there outside the cache, see facenet_core.train.plan); the
    next epoch's are drawn while one trains. Moves the flow run's progress artifact."""
    train = train_epoch_task.with_options(result_storage=ws.prefect_results)
    draw_for = epoch_index_drawer(cfg, ws, data, plan)

    progress = ProgressArtifact.create(
        "facenet-train-progress", f"epoch {plan.began}/{cfg.epochs} done", 100.0 * plan.began / cfg.epochs
    )
    checkpoint = start_checkpoint(plan)
    next_index = draw_for(plan.began)
    for epoch in range(plan.began, cfg.epochs):
        epoch_index = stages.result(next_index)
        if epoch + 1 < cfg.epochs:
            next_index = draw_for(epoch + 1)  # drawn while this epoch trains
        checkpoint = stages.call(
            train,
            workspace=ws,
            config=cfg,
            epoch=epoch,
            epoch_index=epoch_index,
            checkpoint_in=checkpoint,
            layout=plan.layout,
            already_trained=epoch in plan.trained,
            tracking=tracking,
            progress_artifact=str(progress.id) if progress.id else None,
        )
        yield checkpoint
        progress.update(100.0 * (epoch + 1) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs} done")
    progress.finish(f"{cfg.epochs} epochs done")


@flow(name="facenet-train", log_prints=True)
def facenet_train(preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None) -> dict[str, Any]:
    """Train, evaluate and register a FaceNet model; every stage cached and retryable."""
    logger = get_run_logger()
    cfg = load_config(preset, overrides_dict(overrides))
    ws = Workspace.from_config(cfg).ensure()
    cfg = cfg.model_copy(update={"workspace": str(ws.root)})
    storage = {"result_storage": ws.prefect_results}
    stages = StageLog()

    prep = DataPrep.of(cfg, ws)
    data = training_manifest(prep)
    eval_sets = [eval_set_images(prep, s) for s in cfg.resolved_eval_sets()]
    if not eval_sets:
        raise ValueError("no evaluation set: set eval_sets in the preset (or --lfw) to select and register a model")
    cfg = cfg.model_copy(update={"manifest_path": str(data.manifest.path)})

    plan = plan_run(cfg, data.fingerprint, ws)
    if plan.began >= cfg.epochs:
        raise ValueError(
            f"resume_path {plan.start_checkpoint} finished epoch {plan.began - 1}: set epochs above {plan.began}"
        )
    key, run_dir = plan.run_key, plan.run_dir
    save_config(cfg, plan.layout.config)
    logger.info("run %s in %s (manifest %s)", key, run_dir, data.fingerprint[:12])
    tracking = stages.call(
        tracking_tasks.open_tracking_run,
        config=cfg,
        run_key=key,
        manifest_fingerprint=data.fingerprint,
        eval_sets=eval_sets,
        flow_run_id=str(flow_run.id or ""),
        run_dir=run_dir,
        preprocessing=data.preprocessing,
    )

    evaluate_epoch = evaluate_tasks.evaluate_epoch.with_options(**storage)
    evaluations: list[Evaluation] = []
    skipped: list[EpochEvaluation] = []  # epochs whose weights checkpoint_retention deleted
    for trained in train_epochs(cfg, ws, data, plan, stages, tracking):
        for eval_set, fingerprint in eval_sets:
            evaluated = stages.call(
                evaluate_epoch,
                workspace=ws,
                config=cfg,
                epoch=trained.epoch,
                checkpoint=trained.path,
                checkpoint_sha256=trained.sha256,
                eval_set=eval_set,
                eval_set_fingerprint=fingerprint,
                layout=plan.layout,
                tracking=tracking,
            )
            if evaluated.skipped:
                skipped.append(evaluated)
            else:
                evaluations.append(evaluated.evaluation)

    registered = stages.call(
        tracking_tasks.register_model,
        config=cfg,
        tracking=tracking,
        evaluations=evaluations,
        eval_sets=[s for s, _ in eval_sets],
        manifest_fingerprint=data.fingerprint,
        run_dir=run_dir,
        preprocessing=data.preprocessing,
    )
    return {
        "run_key": key,
        "run_dir": str(run_dir),
        "tracking_run_id": tracking.run_id,
        "tracking_uri": tracking.tracking_uri,
        "registered": asdict(registered),
        "evaluations": [{"epoch": e.epoch, "eval_set": e.eval_set, "metrics": dict(e.metrics)} for e in evaluations],
        "skipped_evaluations": [
            {"epoch": s.evaluation.epoch, "eval_set": s.evaluation.eval_set, "skipped": s.skipped} for s in skipped
        ],
        "stage_states": dict(stages.states),
    }


def run_in_process(preset: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run facenet-train in this process (Prefect's embedded mode when no server is configured)."""
    return facenet_train(str(preset), ConfigOverrides(**(overrides or {})))
