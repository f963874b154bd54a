"""The run's data as MLflow dataset inputs: the training manifest and each evaluation set.

Each is logged with `MlflowClient.log_inputs` (context tag `training` or `evaluation`): its name,
a digest (the first `DIGEST_CHARS` of its content fingerprint: MLflow keeps at most 36), the file
it was read from as the source, and a profile holding the full fingerprint and its counts. The
evaluation metrics linked to a registered model name the same dataset (name and digest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from facenet_core.config.schema import Config, DatasetConfig, EvalSet

DIGEST_CHARS = 12
TRAINING = "training"
EVALUATION = "evaluation"


def digest(fingerprint: str) -> str:
    """The dataset digest MLflow shows for a content fingerprint."""
    return fingerprint[:DIGEST_CHARS]


def dataset_origin(dataset: DatasetConfig) -> str | None:
    """Where the training images came from: a folder, the download URLs, a generator or a catalogue entry."""
    return dataset.path or ", ".join(f.url for f in dataset.files) or dataset.generate or dataset.catalogue


def _entity(name: str, fingerprint: str, source_path: str | os.PathLike, profile: Mapping[str, Any]) -> Any:
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import Dataset

    described = MetaDataset(LocalArtifactDatasetSource(str(source_path)), name=name, digest=digest(fingerprint))
    return Dataset(**described.to_dict(), profile=json.dumps({"fingerprint": fingerprint, **profile}))


def training_dataset(config: Config, manifest_path: str | os.PathLike, fingerprint: str) -> Any:
    """The training manifest as an MLflow dataset: images, identities, image root and origin."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from facenet_core.data.manifest import META_ROOT

    labels = pq.read_table(manifest_path, columns=["label"]).column("label")
    root = (pq.read_schema(manifest_path).metadata or {}).get(META_ROOT, b"").decode()
    profile = {
        "num_images": len(labels),
        "num_identities": int(pc.max(labels).as_py()) + 1 if len(labels) else 0,  # labels are 0..N-1
        "root": root,
        "origin": dataset_origin(config.dataset),
    }
    return _entity(config.dataset.name, fingerprint, manifest_path, profile)


def eval_dataset(eval_set: EvalSet, fingerprint: str) -> Any:
    """An evaluation set as an MLflow dataset: its pairs file, protocol, pair counts and image root."""
    from facenet_core.evaluate.pairs import filter_people, read_pairs, read_people

    pairs = read_pairs(eval_set.pairs)
    if eval_set.people_file:
        pairs = filter_people(pairs, read_people(eval_set.people_file))
    profile = {
        "protocol": eval_set.protocol,
        "num_pairs": len(pairs.issame),
        "num_same_pairs": int(pairs.issame.sum()),
        "root": eval_set.root,
    }
    if eval_set.train_pairs:
        profile |= {
            "train_pairs": eval_set.train_pairs,
            "num_train_pairs": len(read_pairs(eval_set.train_pairs).issame),
        }
    return _entity(eval_set.name, fingerprint, eval_set.pairs, profile)


def dataset_inputs(
    config: Config,
    manifest_path: str | os.PathLike,
    manifest_fingerprint: str,
    eval_sets: Sequence[tuple[EvalSet, str]],
) -> list[Any]:
    """The training manifest and the (set, fingerprint) evaluation sets as a run's inputs, for
    `MlflowClient.log_inputs` (logging them again on resume adds nothing: MLflow keeps one input
    per name and digest)."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    def tagged(dataset: Any, context: str) -> Any:
        return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])

    inputs = [tagged(training_dataset(config, manifest_path, manifest_fingerprint), TRAINING)]
    return inputs + [tagged(eval_dataset(s, fingerprint), EVALUATION) for s, fingerprint in eval_sets]
