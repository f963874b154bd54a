"""MLflow tasks: open (or reopen) the run of a run_key, and register the best epoch."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from facenet_core.config import Config, EvalSet
from facenet_core.tracking import contract, datasets, provenance, registry, runs
from facenet_core.tracking import metrics as tracking_metrics
from facenet_core.tracking.uri import resolve_tracking
from facenet_core.train.checkpoints import promote_best, weights_of_epoch


@task(name="open-tracking-run", task_run_name="open-tracking-run", cache_policy=NO_CACHE)
def open_tracking_run(
    config: dict[str, Any],
    run_key: str,
    manifest_fingerprint: str,
    eval_fingerprints: dict[str, str],
    flow_run_id: str,
    run_dir: str,
    preprocessing: dict[str, Any] | None = None,
    eval_sets: list[dict[str, Any]] | None = None,
) -> dict[str, str | None]:
    """The MLflow run of this run_key (reopened on resume) with provenance tags, the tags of what
    the training images went through (`preprocessing`, see `contract.preprocessing`), and the
    training manifest (the config's `manifest_path`) and the prepared `eval_sets`
    (named in `eval_fingerprints`) as its dataset inputs.

    When MLflow is unreachable the run id is None: training goes on, its metrics are buffered
    under run_dir, and the next run that reaches MLflow replays them into the reopened run.
    """
    from mlflow import MlflowClient

    cfg = Config.model_validate(config)
    uri = resolve_tracking(cfg)[0]
    tags = provenance.provenance_tags(
        manifest_fingerprint=manifest_fingerprint, eval_fingerprints=eval_fingerprints, flow_run_id=flow_run_id or None
    )
    if preprocessing is not None:
        tags.update(contract.preprocessing_tags(preprocessing))
    evaluated = [(EvalSet.model_validate(s), eval_fingerprints[s["name"]]) for s in eval_sets or []]
    inputs = datasets.dataset_inputs(cfg, cfg.manifest_path, manifest_fingerprint, evaluated)
    try:
        run_id = runs.open_run(cfg, run_key, tags=tags)
        MlflowClient(uri).log_inputs(run_id, datasets=inputs)
    except Exception as error:  # any failure to reach the store: train now, log later
        get_run_logger().warning("MLflow at %s unreachable (%s): metrics are buffered in %s", uri, error, run_dir)
        return {"run_id": None, "tracking_uri": uri}
    replayed = tracking_metrics.replay_metrics(run_dir, run_id, uri)
    if replayed:
        get_run_logger().info("replayed %d metric records buffered during an MLflow outage", replayed)
    return {"run_id": run_id, "tracking_uri": uri}


def best_evaluation(cfg: Config, evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation (on the selection set) with the highest selection metric; ties: earliest epoch."""
    selection = registry.selection_eval_set(cfg).name
    candidates = [e for e in evaluations if e["eval_set"] == selection]
    if not candidates:
        raise ValueError(
            f"no evaluation on selection set {selection!r}; evaluated: {sorted({e['eval_set'] for e in evaluations})}"
        )
    return max(candidates, key=lambda e: (e["metrics"][cfg.selection_metric], -e["epoch"]))


@task(name="register", task_run_name="register", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register_model(
    config: dict[str, Any],
    run_id: str | None,
    evaluations: list[dict[str, Any]],
    eval_sets: list[dict[str, Any]],
    manifest_fingerprint: str,
    preprocessing: dict[str, Any] | None = None,
    run_dir: str | None = None,
) -> dict[str, Any]:
    """Register the best epoch's model as `facenet`; `champion` moves only when it wins on the same set.

    best.pt is made that epoch too: evaluations that came back Cached (evaluation settings switched
    back, say) never ran the promotion that keeps it current. Metrics still buffered in `run_dir`
    are logged first, so that the model's metrics are linked to the run's own points; that epoch's
    evaluations on the other sets are linked to the model too.
    """
    cfg = Config.model_validate(config)
    best = best_evaluation(cfg, evaluations)
    promote_best(best["checkpoint"], best["epoch"], best["metrics"]["best_distance_threshold"])
    if run_id is None:
        raise RuntimeError(
            "MLflow was unreachable when this run started: training and evaluation are done and cached; "
            "run the flow again once MLflow is back to log the buffered metrics and register the model"
        )
    if run_dir is not None:
        tracking_metrics.replay_metrics(run_dir, run_id, resolve_tracking(cfg)[0])
    eval_set = EvalSet.model_validate(next(s for s in eval_sets if s["name"] == best["eval_set"]))
    same_epoch = [
        (e["eval_set"], e["eval_set_fingerprint"], e["metrics"])
        for e in evaluations
        if e["epoch"] == best["epoch"] and e["eval_set"] != best["eval_set"]
    ]
    registered = registry.register_best(
        cfg,
        run_id,
        weights_of_epoch(best["checkpoint"], best["epoch"]),  # best.pt once retention deleted the epoch file
        best["metrics"],
        best["eval_set_fingerprint"],
        eval_set=eval_set,
        manifest_fingerprint=manifest_fingerprint,
        preprocessing=preprocessing,
        other_evaluations=same_epoch,
    )
    get_run_logger().info("registered %s from epoch %d: %s", registered["model_uri"], best["epoch"], registered)
    return {**registered, "epoch": best["epoch"]}
