"""Shared fixtures: a config whose workspace (and so its SQLite MLflow store) lives in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facenet_core.config.schema import Config, EvalSet
from facenet_core.models import create_model
from facenet_core.train.checkpoints import save_checkpoint


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A small mobilenetv2 recipe with one kfold10 eval set, tracked under tmp_path/workspace."""
    return Config(
        workspace=str(tmp_path / "workspace"),
        model_architecture="mobilenetv2",
        embedding_dimension=16,
        image_size=32,
        eval_sets=[EvalSet(name="lfw", root=str(tmp_path / "lfw"), pairs=str(tmp_path / "pairs.txt"))],
    )


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests pick their own stores: a user's MLFLOW_TRACKING_URI must not leak in, and the URIs and
    experiment these tests make current (process-wide in MLflow) are undone for the tests after them."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    monkeypatch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)


def make_checkpoint(path: Path, seed: int, config) -> Path:
    """A mobilenetv2 checkpoint with the seed's keys and random (seeded) weights."""
    torch.manual_seed(seed)
    model = create_model(config.model_architecture, config.embedding_dimension)
    return save_checkpoint(
        path,
        {
            "epoch": 2,
            "embedding_dimension": config.embedding_dimension,
            "batch_size_training": config.batch_size,
            "model_state_dict": model.state_dict(),
            "model_architecture": config.model_architecture,
            "optimizer_model_state_dict": {},
            "best_distance_threshold": 1.1,
            "image_size": config.image_size,
            "normalize_mean": config.normalize_mean,
            "normalize_std": config.normalize_std,
        },
    )
