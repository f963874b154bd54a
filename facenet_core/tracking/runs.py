"""One MLflow run per run_key: created on the first epoch, found again by tag and reopened on resume."""

from __future__ import annotations

import json
import logging
from typing import Any

from facenet_core.config.schema import Config
from facenet_core.tracking import contract, provenance
from facenet_core.tracking.uri import configure_tracking
from facenet_core.workspace import Workspace

log = logging.getLogger(__name__)

BATCH = 100  # MLflow accepts at most 100 params or tags per log_batch call
TAG_CHANGED = "facenet.changed_on_resume"
TAG_CONFIG = "facenet.config_sha256"


def experiment_name(config: Config) -> str:
    """`config.mlflow_experiment`, else one experiment per training dataset: facenet-<dataset>."""
    return config.mlflow_experiment or f"facenet-{config.dataset.name}"


def flatten_config(config: Config) -> dict[str, str]:
    """The resolved config as MLflow params: nested keys joined by dots, lists of scalars as JSON."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
            for index, item in enumerate(value):
                walk(f"{prefix}.{index}", item)
        elif isinstance(value, list):
            flat[prefix] = json.dumps(value)
        else:
            flat[prefix] = str(value)

    walk("", config.model_dump(mode="json"))
    return flat


def ensure_experiment(client: Any, name: str, artifact_root: str | None) -> str:
    """Id of experiment `name`, created (artifacts under `<artifact_root>/<name>`) or restored if needed."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = f"{artifact_root}/{name}" if artifact_root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created concurrently by another process
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def find_run(client: Any, experiment_id: str, run_key: str) -> Any | None:
    """The oldest run of the experiment tagged with this run_key, or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{provenance.TAG_RUN_KEY}` = '{run_key}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0] if runs else None


def find_run_anywhere(client: Any, run_key: str) -> Any | None:
    """The run tagged with this run_key in any active experiment of the store, or None."""
    for experiment in client.search_experiments():
        run = find_run(client, experiment.experiment_id, run_key)
        if run is not None:
            return run
    return None


def open_run(
    config: Config,
    run_key: str,
    *,
    tags: dict[str, str] | None = None,
    workspace: Workspace | None = None,
) -> str:
    """Create or reopen the run of `run_key` and return its id.

    Params are the flattened config, logged once: a value that differs on resume is not logged
    again (MLflow refuses to change a param); its key goes into the `facenet.changed_on_resume`
    tag and the new config into a `config/config-<sha>.json` artifact. Tags: what the training
    images went through (`facenet.preprocessing.*`, from the config unless the caller's tags say
    what the flow did), the caller's (see `provenance.provenance_tags`), the git commit, and the
    packages list's hash, whose text goes into `provenance/packages-<sha>.txt` whenever it changes.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Param, RunTag

    uri, artifact_root = configure_tracking(config, workspace)
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, experiment_name(config), artifact_root)
    run = find_run(client, experiment_id, run_key)
    if run is None:
        run = client.create_run(experiment_id, tags={provenance.TAG_RUN_KEY: run_key}, run_name=run_key)
        log.info("MLflow: created run %s for run_key %s", run.info.run_id, run_key)
    else:
        client.update_run(run.info.run_id, status="RUNNING")
        log.info("MLflow: reopened run %s for run_key %s", run.info.run_id, run_key)
    run_id = run.info.run_id
    existing_params, existing_tags = run.data.params, run.data.tags

    flat = flatten_config(config)
    new_params = [Param(key, value) for key, value in flat.items() if key not in existing_params]
    changed = sorted(key for key, value in flat.items() if key in existing_params and existing_params[key] != value)
    for start in range(0, len(new_params), BATCH):
        client.log_batch(run_id, params=new_params[start : start + BATCH])

    config_sha = provenance.text_sha256(json.dumps(flat, sort_keys=True))
    packages = provenance.package_list()
    packages_sha = provenance.text_sha256(packages)
    all_tags = {
        **provenance.git_state(),
        **contract.preprocessing_tags(contract.preprocessing(config)),
        **(tags or {}),
        TAG_CONFIG: config_sha,
        provenance.TAG_PACKAGES: packages_sha,
    }
    if changed:
        previous = set(filter(None, existing_tags.get(TAG_CHANGED, "").split(",")))
        all_tags[TAG_CHANGED] = ",".join(sorted(previous | set(changed)))
    if existing_tags.get(TAG_CONFIG) != config_sha:
        client.log_dict(run_id, config.model_dump(mode="json"), f"config/config-{config_sha[:12]}.json")
    if existing_tags.get(provenance.TAG_PACKAGES) != packages_sha:
        client.log_text(run_id, packages, f"provenance/packages-{packages_sha[:12]}.txt")
    tag_list = [RunTag(key, str(value)) for key, value in all_tags.items()]
    for start in range(0, len(tag_list), BATCH):
        client.log_batch(run_id, tags=tag_list[start : start + BATCH])
    return run_id


def close_run(run_id: str, status: str = "FINISHED", tracking_uri: str | None = None) -> None:
    """Mark the run FINISHED (or FAILED / KILLED); a later resume reopens it."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).set_terminated(run_id, status=status)
