"""facenet-train: download -> crop -> manifest -> per epoch (triplets -> train -> evaluate) -> register."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from facenet_core.config import Config, load_config, save_config
from facenet_core.fileio import sha256_file
from facenet_core.train.checkpoints import load_checkpoint
from facenet_core.workspace import Workspace, run_key
from flows.data import prepare_eval_set, prepare_training_data
from flows.overrides import ConfigOverrides, overrides_dict
from flows.stages import StageLog
from tasks import evaluate as evaluate_tasks
from tasks import tracking as tracking_tasks
from tasks import train as train_tasks
from tasks.caching import results_dir
from tasks.progress import ProgressArtifact

DEFAULT_PRESET = "demo"


def triplet_params(cfg: Config) -> dict[str, int]:
    return {name: getattr(cfg, name) for name in train_tasks.TRIPLET_FIELDS}


@flow(name="facenet-train", log_prints=True)
def facenet_train(preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None) -> dict[str, Any]:
    """Train, evaluate and register a FaceNet model; every stage cached and retryable."""
    logger = get_run_logger()
    cfg = load_config(preset, overrides_dict(overrides))
    ws = Workspace.from_config(cfg).ensure()
    cfg = cfg.model_copy(update={"workspace": str(ws.root)})
    storage = {"result_storage": results_dir(ws.root)}
    stages = StageLog()

    data = prepare_training_data(cfg, ws)
    crops = dict(data.crops)
    eval_sets = [prepare_eval_set(cfg, ws, s, crops) for s in cfg.resolved_eval_sets()]
    if not eval_sets:
        raise ValueError("no evaluation set: set eval_sets in the preset (or --lfw) to select and register a model")
    cfg = cfg.model_copy(update={"manifest_path": data.manifest})
    config_dict = cfg.model_dump(mode="json")

    key = run_key(cfg, data.fingerprint)
    run_dir = ws.run_dir(key)
    save_config(cfg, run_dir / "config.yaml")
    logger.info("run %s in %s (manifest %s)", key, run_dir, data.fingerprint[:12])
    tracking = stages.call(
        tracking_tasks.open_tracking_run,
        config_dict,
        key,
        data.fingerprint,
        {s["name"]: fp for s, fp in eval_sets},
        str(flow_run.id or ""),
        str(run_dir),
        data.preprocessing,
        [s for s, _ in eval_sets],
    )

    make_triplets = train_tasks.make_triplets.with_options(**storage)
    train_epoch = train_tasks.train_epoch.with_options(**storage)
    evaluate_epoch = evaluate_tasks.evaluate_epoch.with_options(**storage)

    def triplets_for(epoch: int):
        """The seed's --training_triplets_path feeds only the run's first epoch; later ones are drawn."""
        out = run_dir / "triplets" / f"epoch_{epoch}.npy"
        return make_triplets.submit(
            str(ws.root), data.manifest, data.fingerprint, epoch, triplet_params(cfg), str(out),
            reuse_path=cfg.training_triplets_path if epoch == first_epoch else None,
        )  # fmt: skip

    checkpoint = cfg.resume_path
    checkpoint_sha = sha256_file(checkpoint) if checkpoint else None
    first_epoch = int(load_checkpoint(checkpoint)["epoch"]) + 1 if checkpoint else 0
    if first_epoch >= cfg.epochs:
        raise ValueError(f"resume_path {checkpoint} finished epoch {first_epoch - 1}: set epochs above {first_epoch}")
    evaluations: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []  # epochs whose weights checkpoint_retention deleted
    progress = ProgressArtifact.create(
        "facenet-train-progress", f"epoch {first_epoch}/{cfg.epochs} done", 100.0 * first_epoch / cfg.epochs
    )
    progress_id = str(progress.id) if progress.id else None
    next_triplets = triplets_for(first_epoch)
    for epoch in range(first_epoch, cfg.epochs):
        triplets = stages.result(next_triplets)
        if epoch + 1 < cfg.epochs:
            next_triplets = triplets_for(epoch + 1)  # generated while this epoch trains
        trained = stages.call(
            train_epoch, str(ws.root), config_dict, epoch, triplets["triplets"], triplets["sha256"],
            checkpoint, checkpoint_sha, str(run_dir), tracking, progress_id,
        )  # fmt: skip
        checkpoint, checkpoint_sha = trained["checkpoint"], trained["sha256"]
        for eval_set, fingerprint in eval_sets:
            result = stages.call(
                evaluate_epoch, str(ws.root), config_dict, epoch, checkpoint, checkpoint_sha, eval_set,
                fingerprint, str(run_dir), tracking,
            )  # fmt: skip
            if "skipped" in result:
                skipped.append({k: result[k] for k in ("epoch", "eval_set", "skipped")})
            else:
                evaluations.append({**result, "checkpoint": checkpoint, "eval_set_fingerprint": fingerprint})
        progress.update(100.0 * (epoch + 1) / cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs} done")
    progress.finish(f"{cfg.epochs} epochs done")

    registered = stages.call(
        tracking_tasks.register_model,
        config_dict,
        tracking["run_id"],
        evaluations,
        [s for s, _ in eval_sets],
        data.fingerprint,
        data.preprocessing,
        str(run_dir),
    )
    return {
        "run_key": key,
        "run_dir": str(run_dir),
        "tracking_run_id": tracking["run_id"],
        "tracking_uri": tracking["tracking_uri"],
        "registered": registered,
        "evaluations": [{k: e[k] for k in ("epoch", "eval_set", "metrics")} for e in evaluations],
        "skipped_evaluations": skipped,
        "stage_states": dict(stages.states),
    }


def run_in_process(preset: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run facenet-train in this process (Prefect's embedded mode when no server is configured)."""
    return facenet_train(str(preset), ConfigOverrides(**(overrides or {})))
