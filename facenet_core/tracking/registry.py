"""Register the best checkpoint as a version of the `facenet` model and apply the alias rules.

The logged model (MLflow 3's LoggedModel) holds the evaluation metrics of its epoch, linked to
the evaluation sets as datasets, so its page shows accuracy, AUC and TAR@FAR; the version carries
a few searchable tags, and the full contract is `facenet_contract.json` and `MODEL_CARD.md` in
the model folder.

Alias rules (facenet_core.evaluate.selection): the first version becomes `champion`. A later
version takes `champion` only when it was evaluated on the same set (same eval-set fingerprint and
protocol) as the current champion and beats it on the selection metric (read from the logged
models); otherwise it gets `challenger`. Versions evaluated on different sets are never compared.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from importlib import metadata
from typing import Any

from facenet_core.config.schema import Config, EvalSet
from facenet_core.evaluate.selection import (
    CHAMPION,
    AliasDecision,
    Evaluation,
    VersionScore,
    alias_decision,
    selection_eval_set,
)
from facenet_core.fileio import sha256_file
from facenet_core.tracking import modelpack
from facenet_core.tracking.contract import build_contract
from facenet_core.tracking.datasets import digest
from facenet_core.tracking.metrics import METRICS_PER_BATCH, now_ms, scalar_metrics
from facenet_core.tracking.modelcard import model_card
from facenet_core.tracking.onnx_artifact import log_onnx_export
from facenet_core.tracking.provenance import TAG_RUN_KEY
from facenet_core.tracking.pyfunc import DETECT_PARAM
from facenet_core.tracking.uri import configure_tracking
from facenet_core.workspace import Workspace

log = logging.getLogger(__name__)

# Searchable version tags (`tags.crop_method = 'mtcnn-sandberg'` or 'mtcnn-aligned-arcface')...
TAG_CROP_METHOD = "crop_method"
TAG_INPUT_SIZE = "input_size"
TAG_EVAL_SET = "eval_set"
TAG_ACCURACY = "accuracy"
# ...and the ones the registry's own rules read.
TAG_FINGERPRINT = "eval_set.fingerprint"
TAG_PROTOCOL = "eval_set.protocol"
TAG_CHECKPOINT = "facenet.checkpoint_sha256"
TAG_REGISTERED = "facenet.registered_version"
# What the logged model's code (facenet_core, carried in the model folder) imports to load and
# serve it, plus cloudpickle for the pytorch flavour and mtcnn for the detector's weight files.
REQUIREMENTS = (
    "torch",
    "torchvision",
    "timm",
    "huggingface_hub",
    "safetensors",
    "numpy",
    "pillow",
    "pandas",
    "mlflow",
    "cloudpickle",
    "pydantic",
    "pyyaml",
    "opencv-python-headless",
    "mtcnn",
    "lz4",
    "joblib",
)


def pip_requirements() -> list[str]:
    """The packages the logged model needs, at the versions this process runs (facenet-flow itself
    travels in the model folder as code)."""
    return [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS]


def version_tags(
    contract: Mapping[str, Any],
    eval_set: EvalSet,
    eval_metrics: Mapping[str, Any],
    eval_set_fingerprint: str,
    checkpoint_sha256: str,
    run_key: str,
) -> dict[str, str]:
    """Model-version tags: crop method, input size, evaluation set and accuracy to search by, plus
    the evaluation set's fingerprint and protocol (which versions compare) and the checkpoint and
    run_key (a retried registration finds its version). Everything else is in the model folder."""
    return {
        TAG_CROP_METHOD: str(contract["crop_method"]),
        TAG_INPUT_SIZE: str(contract["input_size"]),
        TAG_EVAL_SET: eval_set.name,
        TAG_ACCURACY: str(float(eval_metrics["accuracy"])),
        TAG_FINGERPRINT: eval_set_fingerprint,
        TAG_PROTOCOL: eval_set.protocol,
        TAG_CHECKPOINT: checkpoint_sha256,
        TAG_RUN_KEY: run_key,
    }


def logged_model_id(version: Any) -> str | None:
    """The logged model a version was registered from: its `model_id`, which MLflow's SQL registry
    leaves empty, else the id in its source `models:/<model_id>`; None for other sources."""
    if version.model_id:
        return version.model_id
    source = version.source or ""
    model_id = source.removeprefix("models:/")
    return model_id if model_id != source and "/" not in model_id else None


def version_metric(client: Any, version: Any, metric: str) -> float | None:
    """A version's `<eval_set>/<metric>` as linked to its logged model, or None when it has none."""
    from mlflow.exceptions import MlflowException

    model_id = logged_model_id(version)
    if model_id is None:
        return None
    key = f"{version.tags.get(TAG_EVAL_SET)}/{metric}"
    try:
        linked = client.get_logged_model(model_id).metrics or []
    except MlflowException:
        return None  # the logged model was deleted
    values = [m for m in linked if m.key == key]
    return max(values, key=lambda m: (m.timestamp, m.step)).value if values else None


def version_score(client: Any, version: Any, metric: str) -> VersionScore:
    """A registered version as the alias rules read it: its set's fingerprint and protocol (tags) and
    its `metric` as linked to its logged model."""
    return VersionScore(
        version=str(version.version),
        eval_set_fingerprint=version.tags.get(TAG_FINGERPRINT),
        protocol=version.tags.get(TAG_PROTOCOL),
        metric=version_metric(client, version, metric),
    )


def apply_alias_rules(client: Any, name: str, version: str, metric: str) -> AliasDecision:
    """Give `version` the champion or challenger alias (`selection.alias_decision`); returns the decision."""
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    held = None if champion is None else version_score(client, champion, metric)
    decision = alias_decision(version_score(client, client.get_model_version(name, version), metric), held, metric)
    client.set_registered_model_alias(name, decision.alias, version)
    log.info("MLflow: %s v%s is %s (%s)", name, version, decision.alias, decision.reason)
    return decision


def link_metrics(
    client: Any,
    run_id: str,
    model_id: str,
    epoch: int,
    evaluations: Sequence[Evaluation],
) -> None:
    """Link the metrics of `evaluations` (of epoch `epoch`) to the logged model as `<set>/<metric>` at
    step `epoch`, each naming its set as the dataset. A run point of the same key, step and value
    lends its timestamp, so the run's history keeps one point per epoch."""
    from mlflow.entities import Metric

    linked = []
    for evaluation in evaluations:
        set_name, dataset_digest = evaluation.eval_set, digest(evaluation.eval_set_fingerprint)
        for key, value in scalar_metrics(evaluation.metrics, prefix=f"{set_name}/").items():
            logged = [m for m in client.get_metric_history(run_id, key) if m.step == epoch and m.value == value]
            timestamp = logged[-1].timestamp if logged else now_ms()
            linked.append(Metric(key, value, timestamp, epoch, model_id, set_name, dataset_digest, run_id=run_id))
    for start in range(0, len(linked), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=linked[start : start + METRICS_PER_BATCH])


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
    other_evaluations: Sequence[Evaluation] = (),
) -> dict[str, Any]:
    """Log the checkpoint's model (eval mode) from `run_id`, link its metrics, register it and set
    its alias.

    `eval_metrics` are the metrics of this checkpoint on `eval_set` (default: the selection
    set); they must include accuracy, `best_distance_threshold` and the selection metric, and may
    include `threshold_at_far` (the threshold for FAR=1e-3). They, and the metrics of
    `other_evaluations` (the same epoch on other sets), are linked to the logged model (see
    `link_metrics`); the model is the run's output at step = the checkpoint's epoch.
    `preprocessing` is what the training images went through (`contract.preprocessing`; default:
    what the config says). Registering the same run and checkpoint again returns the existing
    version. Returns name, version, model_uri, model_id, alias and reason.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    from facenet_core.train.checkpoints import load_model_from_checkpoint

    eval_set = eval_set or selection_eval_set(config)
    for key in ("accuracy", "best_distance_threshold", config.selection_metric):
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
            "model_id": logged_model_id(existing),
            "alias": aliases[0] if aliases else None,
            "reason": "already registered from this run and checkpoint",
            "previous_champion": None,
        }

    model, checkpoint = load_model_from_checkpoint(checkpoint_path, device="cpu")
    model = model.eval()
    contract = build_contract(config, checkpoint, eval_metrics, preprocessing)
    card = model_card(
        config,
        checkpoint,
        eval_set,
        eval_metrics,
        eval_set_fingerprint,
        contract,
        manifest_fingerprint=manifest_fingerprint,
    )
    epoch = int(checkpoint.get("epoch", 0))
    # Created here, not by Model.log(run_id=...), which would link every run metric logged at the
    # model's step (training and system metrics count steps differently) and read each one's history.
    logged = mlflow.initialize_logged_model(
        name="model", source_run_id=run_id, params=run.data.params, experiment_id=run.info.experiment_id
    )
    info = Model.log(
        artifact_path=None,
        name="model",
        flavor=modelpack,
        flavor_name="pytorch",
        model_id=logged.model_id,
        pytorch_model=model,
        architecture=checkpoint.get("model_architecture", config.model_architecture),
        contract=contract,
        model_card=card,
        signature=modelpack.serving_signature(contract),
        input_example=(modelpack.photo_example(), {DETECT_PARAM: True}),
        pip_requirements=pip_requirements(),
        serialization_format="pickle",
    )
    log_onnx_export(client, logged.model_id, model, contract)  # model.onnx beside MLmodel
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=epoch)])
    registered_from = Evaluation(
        epoch=epoch,
        eval_set=eval_set.name,
        eval_set_fingerprint=eval_set_fingerprint,
        checkpoint=str(checkpoint_path),
        metrics=eval_metrics,
    )
    link_metrics(client, run_id, logged.model_id, epoch, [registered_from, *other_evaluations])
    tags = version_tags(contract, eval_set, eval_metrics, eval_set_fingerprint, checkpoint_sha, run_key)
    registered = mlflow.register_model(info.model_uri, name, tags=tags)
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
    return {"name": name, "version": version, "model_uri": model_uri, "model_id": info.model_id, **asdict(decision)}
