"""Registering the best checkpoint as `facenet`: a few tags, the contract and card in the model folder,
metrics linked to the logged model, alias rules, loading."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from facenet_core.evaluate.selection import Evaluation
from facenet_core.tracking.metrics import log_epoch_metrics
from facenet_core.tracking.pyfunc import prepare_faces, read_contract
from facenet_core.tracking.registry import register_best
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.uri import resolve_tracking
from facenet_core.train.checkpoints import load_model_from_checkpoint

from .conftest import make_checkpoint

FINGERPRINT = "a" * 64


def metrics(accuracy: float) -> dict[str, float]:
    return {
        "accuracy": accuracy,
        "roc_auc": accuracy,
        "tar_at_far": 0.1,
        "far": 0.001,
        "best_distance_threshold": 1.1,
        "threshold_at_far": 0.6,
        "num_pairs": 6000,
    }


def register(config, tmp_path: Path, key: str, accuracy: float, fingerprint: str = FINGERPRINT, **options) -> dict:
    run_id = open_run(config, key)
    checkpoint = tmp_path / key / "best.pt"
    if not checkpoint.exists():
        make_checkpoint(checkpoint, seed=len(key), config=config)
    return register_best(config, run_id, checkpoint, metrics(accuracy), fingerprint, **options)


@pytest.mark.slow
def test_champion_loads_as_pyfunc_and_pytorch_and_embeds(config, tmp_path):
    run_id = open_run(config, "run-a")
    run_dir = tmp_path / "run-a"
    for epoch, accuracy in ((0, 0.6), (1, 0.7), (2, 0.8)):  # as evaluation logs them, epoch 2 the best
        assert log_epoch_metrics(run_id, epoch, "lfw", metrics(accuracy), run_dir=run_dir)
    view1 = {**metrics(0.75), "num_pairs": 1000}
    assert log_epoch_metrics(run_id, 2, "view1", view1, run_dir=run_dir)
    on_view1 = Evaluation(epoch=2, eval_set="view1", eval_set_fingerprint="b" * 64, checkpoint="", metrics=view1)
    first = register(config, tmp_path, "run-a", accuracy=0.8, other_evaluations=[on_view1])
    assert (first["version"], first["alias"]) == ("1", "champion")
    client = MlflowClient(resolve_tracking(config)[0])
    version = client.get_model_version("facenet", "1")
    assert version.tags == {
        "crop_method": "mtcnn-sandberg",
        "input_size": "32",
        "eval_set": "lfw",
        "accuracy": "0.8",
        "eval_set.fingerprint": FINGERPRINT,
        "eval_set.protocol": "kfold10",
        "facenet.checkpoint_sha256": version.tags["facenet.checkpoint_sha256"],
        "facenet.run_key": "run-a",
    }
    assert client.search_model_versions("tags.crop_method = 'mtcnn-sandberg' and tags.eval_set = 'lfw'")
    run = client.get_run(version.run_id)
    assert run.info.run_id == run_id and run.data.tags["facenet.registered_version"] == "facenet/1"
    logged = client.get_logged_model(first["model_id"])
    assert logged.experiment_id == run.info.experiment_id and logged.source_run_id == run_id
    assert logged.artifact_location.startswith((tmp_path / "workspace" / "mlflow-artifacts").as_uri())
    assert logged.params["model_architecture"] == "mobilenetv2"  # the run's params, as MLflow copies them
    assert [(o.model_id, o.step) for o in run.outputs.model_outputs] == [(first["model_id"], 2)]

    # The model's page: the best epoch's evaluation metrics, each naming its evaluation set.
    linked = {(m.key, m.dataset_name, m.dataset_digest): (m.value, m.step) for m in logged.metrics}
    assert linked[("lfw/accuracy", "lfw", FINGERPRINT[:12])] == (0.8, 2)
    assert linked[("lfw/roc_auc", "lfw", FINGERPRINT[:12])] == (0.8, 2)
    assert linked[("lfw/tar_at_far", "lfw", FINGERPRINT[:12])] == (0.1, 2)
    assert linked[("view1/accuracy", "view1", "b" * 12)] == (0.75, 2)
    assert {key.split("/")[0] for key, _, _ in linked} == {"lfw", "view1"}  # no training or system metric
    history = client.get_metric_history(run_id, "lfw/accuracy")  # linking added no point to the run
    assert sorted((m.step, m.value) for m in history) == [(0, 0.6), (1, 0.7), (2, 0.8)]

    # The full contract: one JSON file in the model folder, and the model card.
    contract = read_contract(mlflow.artifacts.download_artifacts("models:/facenet@champion"))
    assert (contract["crop_method"], contract["input_size"], contract["channel_order"]) == ("mtcnn-sandberg", 32, "RGB")
    assert contract["layout"] == "NCHW" and contract["mean"] == [0.6071, 0.4609, 0.3944]
    assert (contract["threshold_best_accuracy"], contract["threshold_at_far"]) == (1.1, 0.6)
    card = Path(mlflow.artifacts.download_artifacts("models:/facenet@champion/MODEL_CARD.md")).read_text()
    assert "## Licence notes of the training data" in card and "Synthetic faces" in card
    assert "| accuracy | 0.8 |" in card and "| num_pairs | 6000 |" in card

    original, _ = load_model_from_checkpoint(tmp_path / "run-a" / "best.pt")
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8) for _ in range(5)]  # crops of the crop size
    contract = {"input_size": 32, "mean": config.normalize_mean, "std": config.normalize_std}
    batch = prepare_faces(faces, contract)
    assert batch.shape == (5, 3, 32, 32) and batch.dtype == np.float32
    with torch.inference_mode():
        expected = original(torch.from_numpy(batch)).numpy()

    embedder = mlflow.pyfunc.load_model("models:/facenet@champion")  # photos, or crops with detect=False
    pngs = []
    for face in faces:
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, format="PNG")
        pngs.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    out = embedder.predict(pd.DataFrame({"image": pngs}), params={"detect": False})
    embeddings = np.array(out.embedding.tolist())
    assert embeddings.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)

    module = mlflow.pytorch.load_model("models:/facenet@champion")
    assert not module.training
    with torch.inference_mode():
        np.testing.assert_allclose(module(torch.from_numpy(batch)).numpy(), expected, atol=1e-5)
    module.train()
    module(torch.from_numpy(batch)).sum().backward()  # a pickled eager module: it can be fine-tuned
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


@pytest.mark.slow
def test_alias_rules(config, tmp_path):
    assert register(config, tmp_path, "run-a", accuracy=0.8)["alias"] == "champion"
    client = MlflowClient(resolve_tracking(config)[0])
    worse = register(config, tmp_path, "run-b", accuracy=0.7)
    assert (worse["version"], worse["alias"]) == ("2", "challenger")
    assert str(client.get_model_version_by_alias("facenet", "champion").version) == "1"
    other_set = register(config, tmp_path, "run-c", accuracy=0.99, fingerprint="b" * 64)
    assert other_set["alias"] == "challenger" and "different set" in other_set["reason"]
    assert str(client.get_model_version_by_alias("facenet", "champion").version) == "1"
    better = register(config, tmp_path, "run-dd", accuracy=0.85)
    assert (better["version"], better["alias"], better["previous_champion"]) == ("4", "champion", "1")
    assert str(client.get_model_version_by_alias("facenet", "champion").version) == "4"
    assert str(client.get_model_version_by_alias("facenet", "challenger").version) == "3"

    again = register(config, tmp_path, "run-dd", accuracy=0.85)  # a retried registration, same checkpoint file
    assert (again["version"], again["alias"], again["model_id"]) == ("4", "champion", better["model_id"])
    assert len(client.search_model_versions("name = 'facenet'")) == 4

    # A champion whose model holds no linked metric (registered by hand, or by an older release) is kept.
    run_id = client.get_model_version("facenet", "4").run_id
    legacy = client.create_model_version(
        "facenet", f"runs:/{run_id}/legacy", run_id=run_id, tags={"eval_set.fingerprint": FINGERPRINT}
    )
    client.set_registered_model_alias("facenet", "champion", legacy.version)
    client.set_model_version_tag("facenet", legacy.version, "eval_set.protocol", "kfold10")
    newer = register(config, tmp_path, "run-e", accuracy=0.95)
    assert newer["alias"] == "challenger" and newer["reason"] == "champion v5 has no accuracy to compare"
