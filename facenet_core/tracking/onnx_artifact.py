"""The ONNX export of a logged model, in the model folder beside MLmodel: a registered version
carries `model.onnx` (with its contract in the metadata) for runtimes other than PyTorch."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ONNX_FILE = "model.onnx"


def log_onnx_export(client: Any, model_id: str, model: Any, contract: Mapping[str, Any]) -> str:
    """Export `model` with `contract` (`build_contract`'s dict) to ONNX and add it to the artifacts of
    the logged model `model_id`; returns its path in the model folder."""
    from facenet_core.inference.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="facenet-onnx-") as folder:
        path = export_onnx(model, contract, Path(folder) / ONNX_FILE)
        client.log_model_artifact(model_id, str(path))
    return ONNX_FILE
