"""A registered version carries model.onnx beside MLmodel: the registered model's contract in its
metadata, the same embeddings as the PyTorch flavour."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pytest
import torch

from facenet_core.inference.onnx import CONTRACT_KEY, OnnxEmbedder
from facenet_core.tracking.contract import CONTRACT_FILE
from facenet_core.tracking.pyfunc import prepare_faces
from facenet_core.tracking.registry import register_best
from facenet_core.tracking.runs import open_run
from facenet_core.train.checkpoints import load_model_from_checkpoint

from .conftest import make_checkpoint

METRICS = {"accuracy": 0.8, "roc_auc": 0.85, "best_distance_threshold": 1.1, "threshold_at_far": 0.6}


@pytest.mark.slow
def test_registered_version_carries_the_onnx_export_with_its_contract(config, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "best.pt", seed=3, config=config)
    registered = register_best(config, open_run(config, "run-onnx"), checkpoint, METRICS, "f" * 64)
    folder = Path(mlflow.artifacts.download_artifacts(registered["model_uri"], dst_path=str(tmp_path / "dl")))
    assert {"MLmodel", CONTRACT_FILE, "model.onnx"} <= {p.name for p in folder.iterdir()}

    # The ONNX metadata holds the registered contract as written, every key of facenet_contract.json.
    contract = json.loads((folder / CONTRACT_FILE).read_text(encoding="utf-8"))
    stored = {prop.key: prop.value for prop in onnx.load(str(folder / "model.onnx")).metadata_props}
    assert json.loads(stored[CONTRACT_KEY]) == contract
    assert contract["channel_order"] == "RGB" and contract["input_size"] == config.image_size

    embedder = OnnxEmbedder(folder / "model.onnx")
    assert embedder.contract.threshold_at_far == 0.6 and embedder.contract.embedding_dimension == 16
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)
    original, _ = load_model_from_checkpoint(checkpoint)
    with torch.inference_mode():
        expected = original.eval()(torch.from_numpy(prepare_faces(crops, contract))).numpy()
    assert np.abs(embedder.embed(crops) - expected).max() < 1e-4
