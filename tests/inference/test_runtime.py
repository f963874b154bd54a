"""Model identities (the `model` column of embeddings tables): a checkpoint's file hash, a registered
model's version whatever alias named it, and the runtime chosen from the file name."""

from __future__ import annotations

import pytest

from facenet_core.errors import UserError
from facenet_core.fileio import sha256_file
from facenet_core.inference.runtime import open_model, runtime_for
from facenet_core.tracking.registry import register_best
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.uri import resolve_tracking
from tests.tracking.conftest import _isolated_mlflow  # noqa: F401  (the fixture, for the MLflow test)

from .conftest import REGISTERED_METRICS, registry_config


def test_runtime_follows_the_file_name_unless_given():
    assert (runtime_for("m.ONNX", None), runtime_for("best.pt", None), runtime_for("m.onnx", "torch")) == (
        "onnx",
        "torch",
        "torch",
    )
    with pytest.raises(UserError, match="runtime 'tf' is not one of torch, onnx"):
        runtime_for("best.pt", "tf")


def test_a_checkpoint_is_identified_by_its_sha256(project_checkpoint):
    assert open_model(project_checkpoint, device="cpu").identity == f"sha256:{sha256_file(project_checkpoint)}"


@pytest.mark.slow
def test_a_registered_model_is_identified_by_its_version_whatever_the_alias(tmp_path, project_checkpoint):
    config = registry_config(tmp_path)
    metrics = REGISTERED_METRICS
    registered = register_best(config, open_run(config, "run-a"), project_checkpoint, metrics, "a" * 64)
    uri = resolve_tracking(config)[0]
    by_alias = open_model("models:/facenet@champion", device="cpu", tracking_uri=uri)
    by_version = open_model(registered["model_uri"], device="cpu", tracking_uri=uri)
    assert by_alias.identity == by_version.identity == registered["model_uri"] == "models:/facenet/1"
