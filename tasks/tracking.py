"""MLflow tasks: open (or reopen) the run of a run_key, and register the best epoch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facenet_core.config import Config, EvalSet
from facenet_core.evaluate import selection
from facenet_core.evaluate.selection import Evaluation
from facenet_core.tracking import contract, datasets, provenance, registry, runs
from facenet_core.tracking import metrics as tracking_metrics
from facenet_core.tracking.uri import resolve_tracking
from facenet_core.train.checkpoints import weights_of_epoch


@dataclass(frozen=True)
class TrackingRun:
    """The MLflow run a training run logs to; `run_id` is None while MLflow is unreachable (metrics
    are then buffered in the run folder and replayed by the next run that reaches it)."""

    run_id: str | None
    tracking_uri: str


@dataclass(frozen=True)
class RegisteredModel:
    """The model version registered from the best epoch (`registry.register_best`) and that epoch."""

    name: str
    version: str
    model_uri: str
    model_id: str | None
    alias: str | None
    reason: str
    previous_champion: str | None
    epoch: int


@task(name="open-tracking-run", task_run_name="open-tracking-run", cache_policy=NO_CACHE)
def open_tracking_run(
    config: Config,
    run_key: str,
    manifest_fingerprint: str,
    eval_sets: Sequence[tuple[EvalSet, str]],
    flow_run_id: str | None,
    run_dir: Path,
    preprocessing: dict[str, Any] | None = None,
) -> TrackingRun:
    """The MLflow run of this run_key (reopened on resume) with provenance tags, the tags of what
    the training images went through (`preprocessing`, see `contract.preprocessing`), and the
    training manifest (the config's `manifest_path`) and the prepared `eval_sets` (each with its
    fingerprint) as its dataset inputs.

    When MLflow is unreachable the run id is None: training goes on, its metrics are buffered
    under run_dir, and the next run that reaches MLflow replays them into the reopened run.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking(config)[0]
    fingerprints = {eval_set.name: fingerprint for eval_set, fingerprint in eval_sets}
    tags = provenance.provenance_tags(
        manifest_fingerprint=manifest_fingerprint, eval_fingerprints=fingerprints, flow_run_id=flow_run_id or None
    )
    if preprocessing is not None:
        tags.update(contract.preprocessing_tags(preprocessing))
    inputs = datasets.dataset_inputs(config, config.manifest_path, manifest_fingerprint, list(eval_sets))
    try:
        run_id = runs.open_run(config, run_key, tags=tags)
        MlflowClient(uri).log_inputs(run_id, datasets=inputs)
    except Exception as error:  # any failure to reach the store: train now, log later
        get_run_logger().warning("MLflow at %s unreachable (%s): metrics are buffered in %s", uri, error, run_dir)
        return TrackingRun(run_id=None, tracking_uri=uri)
    replayed = tracking_metrics.replay_metrics(run_dir, run_id, uri)
    if replayed:
        get_run_logger().info("replayed %d metric records buffered during an MLflow outage", replayed)
    return TrackingRun(run_id=run_id, tracking_uri=uri)


@task(name="register", task_run_name="register", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register_model(
    config: Config,
    tracking: TrackingRun,
    evaluations: Sequence[Evaluation],
    eval_sets: Sequence[EvalSet],
    manifest_fingerprint: str,
    run_dir: Path,
    preprocessing: dict[str, Any] | None = None,
) -> RegisteredModel:
    """Register the best epoch's model as `facenet`; `champion` moves only when it wins on the same set
    (`selection.alias_decision`).

    best.pt is made that epoch too (`selection.promote`): evaluations that came back Cached
    (evaluation settings switched back, say) never kept it current. Metrics still buffered in
    `run_dir` are logged first, so that the model's metrics are linked to the run's own points; that
    epoch's evaluations on the other sets are linked to the model too.
    """
    chosen = selection.registered_evaluations(config, evaluations)
    best = chosen.best
    selection.promote(best)
    if tracking.run_id is None:
        raise RuntimeError(
            "MLflow was unreachable when this run started: training and evaluation are done and cached; "
            "run the flow again once MLflow is back to log the buffered metrics and register the model"
        )
    tracking_metrics.replay_metrics(run_dir, tracking.run_id, tracking.tracking_uri)
    registered = registry.register_best(
        config,
        tracking.run_id,
        weights_of_epoch(best.checkpoint, best.epoch),  # best.pt once retention deleted the epoch file
        best.metrics,
        best.eval_set_fingerprint,
        eval_set=next(s for s in eval_sets if s.name == best.eval_set),
        manifest_fingerprint=manifest_fingerprint,
        preprocessing=preprocessing,
        other_evaluations=chosen.others,
    )
    get_run_logger().info("registered %s from epoch %d: %s", registered["model_uri"], best.epoch, registered)
    return RegisteredModel(**registered, epoch=best.epoch)
