"""Register the best checkpoint as a version of the `facenet` model and apply the alias rules.

Alias rules: the first version becomes `champion`. A later version takes `champion` only when it
was evaluated on the same set (same eval-set fingerprint and protocol) as the current champion
and beats it on the selection metric; otherwise it gets `challenger`. Versions evaluated on
different sets are never compared.
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import numpy as np

from facenet_core.config.schema import Config, EvalSet
from facenet_core.fileio import sha256_file
from facenet_core.tracking import modelpack
from facenet_core.tracking.contract import build_contract, contract_tags
from facenet_core.tracking.modelcard import model_card
from facenet_core.tracking.provenance import TAG_RUN_KEY
from facenet_core.tracking.uri import configure_tracking
from facenet_core.workspace import Workspace

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_FINGERPRINT = "eval_set.fingerprint"
TAG_PROTOCOL = "eval_set.protocol"
TAG_SELECTION = "selection_metric"
TAG_CHECKPOINT = "facenet.checkpoint_sha256"
TAG_REGISTERED = "facenet.registered_version"
REQUIREMENTS = ("torch", "torchvision", "timm", "numpy", "pillow", "mlflow", "cloudpickle")


def selection_eval_set(config: Config) -> EvalSet:
    """The eval set that picks the best epoch: `selection_eval_set`, else the first one."""
    sets = config.resolved_eval_sets()
    if not sets:
        raise ValueError("no evaluation set configured (eval_sets or --lfw): a model is registered by its eval metrics")
    if config.selection_eval_set is None:
        return sets[0]
    return next(s for s in sets if s.name == config.selection_eval_set)


def pip_requirements() -> list[str]:
    """Pinned versions of the packages the logged model needs (facenet-flow itself aside)."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def input_example(contract: Mapping[str, Any], count: int = 2) -> np.ndarray:
    """A valid normalised float32 batch: uniform grey faces at the contract's input size."""
    size = contract["input_size"]
    mean = np.asarray(contract["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(contract["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return ((np.full((count, 3, size, size), 0.5, dtype=np.float32) - mean) / std).astype(np.float32)


def version_tags(
    config: Config,
    checkpoint: Mapping[str, Any],
    contract: Mapping[str, Any],
    eval_set: EvalSet,
    eval_metrics: Mapping[str, Any],
    eval_set_fingerprint: str,
    checkpoint_sha256: str,
) -> dict[str, str]:
    """Model-version tags: contract, metrics, evaluation set and what was trained."""
    tags = {
        **contract_tags(contract),
        **{f"metric.{k}": str(float(v)) for k, v in eval_metrics.items() if isinstance(v, numbers.Real)},
        "eval_set.name": eval_set.name,
        TAG_PROTOCOL: eval_set.protocol,
        TAG_FINGERPRINT: eval_set_fingerprint,
        TAG_SELECTION: config.selection_metric,
        TAG_CHECKPOINT: checkpoint_sha256,
        "model_architecture": str(checkpoint.get("model_architecture", config.model_architecture)),
        "training_dataset": config.dataset.name,
        "epoch": str(checkpoint.get("epoch", "")),
    }
    return tags


def comparable(new_tags: Mapping[str, str], champion_tags: Mapping[str, str], metric: str) -> bool:
    """Same eval set (fingerprint), same protocol, and the champion has the selection metric."""
    return (
        new_tags.get(TAG_FINGERPRINT) == champion_tags.get(TAG_FINGERPRINT)
        and new_tags.get(TAG_PROTOCOL) == champion_tags.get(TAG_PROTOCOL)
        and f"metric.{metric}" in champion_tags
        and f"metric.{metric}" in new_tags
    )


def apply_alias_rules(client: Any, name: str, version: str, metric: str) -> dict[str, Any]:
    """Give `version` the champion or challenger alias (module docstring); returns the decision."""
    from mlflow.exceptions import MlflowException

    new = client.get_model_version(name, version)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if champion is None:
        alias, reason = CHAMPION, "first version with an evaluation"
    elif not comparable(new.tags, champion.tags, metric):
        alias, reason = CHALLENGER, f"evaluated on a different set or protocol than champion v{champion.version}"
    elif float(new.tags[f"metric.{metric}"]) > float(champion.tags[f"metric.{metric}"]):
        alias, reason = CHAMPION, f"{metric} beats champion v{champion.version}"
    else:
        alias, reason = CHALLENGER, f"{metric} does not beat champion v{champion.version}"
    client.set_registered_model_alias(name, alias, version)
    log.info("MLflow: %s v%s is %s (%s)", name, version, alias, reason)
    return {
        "alias": alias,
        "reason": reason,
        "previous_champion": None if champion is None else str(champion.version),
    }


def _existing_version(client: Any, name: str, run_key: str, checkpoint_sha256: str) -> Any | None:
    """The version already registered from this run and checkpoint (a retried registration)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None  # no such registered model yet
    for version in versions:
        if version.tags.get(TAG_CHECKPOINT) == checkpoint_sha256 and version.tags.get(TAG_RUN_KEY) == run_key:
            return version
    return None


def register_best(
    config: Config,
    run_id: str,
    checkpoint_path: str | os.PathLike,
    eval_metrics: Mapping[str, Any],
    eval_set_fingerprint: str,
    *,
    eval_set: EvalSet | None = None,
    manifest_fingerprint: str | None = None,
    workspace: Workspace | None = None,
    preprocessing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the checkpoint's model (eval mode) under `run_id`, register it and set its alias.

    `eval_metrics` are the metrics of this checkpoint on `eval_set` (default: the selection
    set); they must include `best_distance_threshold` and the selection metric, and may include
    `threshold_at_far` (the threshold for FAR=1e-3). `preprocessing` is what the training images
    went through (`contract.preprocessing`; default: what the config says). Registering the same
    run and checkpoint again returns the existing version. Returns name, version, model_uri, alias
    and reason.
    """
    import mlflow
    import torch
    from mlflow import MlflowClient
    from mlflow.models import Model, infer_signature

    from facenet_core.train.checkpoints import load_model_from_checkpoint

    eval_set = eval_set or selection_eval_set(config)
    for key in ("best_distance_threshold", config.selection_metric):
        if key not in eval_metrics:
            raise ValueError(f"eval_metrics of {checkpoint_path} lack {key!r}; pass the evaluation's metrics dict")
    uri, _ = configure_tracking(config, workspace)
    client = MlflowClient(uri)
    name = config.registered_model_name
    checkpoint_sha = sha256_file(checkpoint_path)
    run = client.get_run(run_id)
    run_key = run.data.tags.get(TAG_RUN_KEY, "")
    existing = _existing_version(client, name, run_key, checkpoint_sha)
    if existing is not None:
        aliases = list(client.get_model_version(name, str(existing.version)).aliases)  # search omits aliases
        return {
            "name": name,
            "version": str(existing.version),
            "model_uri": f"models:/{name}/{existing.version}",
            "model_id": existing.model_id,
            "alias": aliases[0] if aliases else None,
            "reason": "already registered from this run and checkpoint",
            "previous_champion": None,
        }

    model, checkpoint = load_model_from_checkpoint(checkpoint_path, device="cpu")
    model = model.eval()
    contract = build_contract(config, checkpoint, eval_metrics, preprocessing)
    example = input_example(contract)
    with torch.inference_mode():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    card = model_card(
        config,
        checkpoint,
        eval_set,
        eval_metrics,
        eval_set_fingerprint,
        contract,
        manifest_fingerprint=manifest_fingerprint,
    )
    mlflow.set_experiment(experiment_id=run.info.experiment_id)  # the logged model joins the run's experiment
    info = Model.log(
        artifact_path=None,
        name="model",
        flavor=modelpack,
        flavor_name="pytorch",
        run_id=run_id,
        pytorch_model=model,
        contract=contract,
        model_card=card,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        serialization_format="pickle",
    )
    tags = version_tags(config, checkpoint, contract, eval_set, eval_metrics, eval_set_fingerprint, checkpoint_sha)
    registered = mlflow.register_model(info.model_uri, name, tags={**tags, TAG_RUN_KEY: run_key})
    client.update_model_version(
        name,
        registered.version,
        description=f"{eval_set.name} {config.selection_metric}: "
        f"{float(eval_metrics[config.selection_metric]):.4f} (run_key {run_key}); see MODEL_CARD.md",
    )
    decision = apply_alias_rules(client, name, registered.version, config.selection_metric)
    version = str(registered.version)
    client.set_tag(run_id, TAG_REGISTERED, f"{name}/{version}")
    model_uri = f"models:/{name}/{version}"
    return {"name": name, "version": version, "model_uri": model_uri, "model_id": info.model_id, **decision}
