"""The training manifest and the evaluation sets as the run's MLflow dataset inputs."""

from __future__ import annotations

import json

from mlflow import MlflowClient
from PIL import Image

from facenet_core.config.schema import DatasetConfig, EvalSet
from facenet_core.data.manifest import build_manifest
from facenet_core.tracking.datasets import dataset_inputs
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.uri import resolve_tracking


def image_tree(root, counts: dict[str, int]):
    for person, count in counts.items():
        (root / person).mkdir(parents=True)
        for number in range(count):
            Image.new("RGB", (8, 8), (number * 40, 10, 10)).save(root / person / f"{person}_{number:04d}.png")
    return root


def test_manifest_and_eval_sets_logged_once_with_fingerprints_counts_and_sources(config, tmp_path):
    root = image_tree(tmp_path / "faces", {"Ann": 2, "Bob": 3, "Cid": 1})
    manifest = tmp_path / "manifests" / "demo.parquet"
    fingerprint = build_manifest(root, manifest, progress=False)["fingerprint"]
    pairs = tmp_path / "pairsDevTest.txt"
    pairs.write_text("2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nBob\t1\tCid\t1\n")
    train_pairs = tmp_path / "pairsDevTrain.txt"
    train_pairs.write_text("1\nBob\t1\t2\nAnn\t1\tCid\t1\n")
    view1 = EvalSet(name="view1", root=str(root), pairs=str(pairs), protocol="train_test", train_pairs=str(train_pairs))
    config = config.model_copy(update={"dataset": DatasetConfig(name="faces", path=str(root))})
    inputs = dataset_inputs(config, manifest, fingerprint, [(view1, "e" * 64)])

    run_id = open_run(config, "key-data")
    client = MlflowClient(resolve_tracking(config)[0])
    client.log_inputs(run_id, datasets=inputs)
    client.log_inputs(run_id, datasets=dataset_inputs(config, manifest, fingerprint, [(view1, "e" * 64)]))  # resume

    logged = client.get_run(run_id).inputs.dataset_inputs
    assert len(logged) == 2
    by_context = {i.tags[0].value: i.dataset for i in logged}
    assert [t.key for i in logged for t in i.tags] == ["mlflow.data.context"] * 2
    training, evaluation = by_context["training"], by_context["evaluation"]
    assert (training.name, training.digest, training.source_type) == ("faces", fingerprint[:12], "local")
    assert json.loads(training.source) == {"uri": str(manifest)}
    assert json.loads(training.profile) == {
        "fingerprint": fingerprint,
        "num_images": 6,
        "num_identities": 3,
        "root": str(root),
        "origin": str(root),
    }
    assert (evaluation.name, evaluation.digest) == ("view1", "e" * 12)
    assert json.loads(evaluation.source) == {"uri": str(pairs)}
    assert json.loads(evaluation.profile) == {
        "fingerprint": "e" * 64,
        "protocol": "train_test",
        "num_pairs": 4,
        "num_same_pairs": 2,
        "root": str(root),
        "train_pairs": str(train_pairs),
        "num_train_pairs": 2,
    }
