"""A model opened for embedding photos, in the runtime asked for, with the name that identifies it.

`open_model` turns what the user gave (an MLflow model URI or folder, a checkpoint, or an ONNX file
`facenet export` wrote) into an `Embedder` and its identity: the string an embeddings table records
in its `model` column, so a search can refuse a gallery made by another model. Identities: a
checkpoint's `sha256:<hex>` (of the file); a registered model's `models:/<name>/<version>` (an alias
resolved to the version it points at now); another MLflow URI as given; a model folder's
`sha256:<hex>` of its files; an ONNX file's, the identity of the model it was exported from (recorded
by `export_model`), so a gallery embedded with PyTorch can be searched with its ONNX export.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from facenet_core.errors import UserError
from facenet_core.fileio import sha256_file
from facenet_core.inference.embedder import Embedder, TorchEmbedder
from facenet_core.inference.model import LoadedModel, load_model

Runtime = Literal["torch", "onnx"]
RUNTIMES = ("torch", "onnx")
ONNX_SUFFIX = ".onnx"
# The key of the exported contract that names the model it was exported from.
SOURCE_MODEL_KEY = "source_model"
REGISTERED_ALIAS = re.compile(r"^models:/([^/@]+)@([^/]+)$")


@dataclass(frozen=True)
class OpenedModel:
    """An embedder, the identity of its model, and the runtime that runs it."""

    embedder: Embedder
    identity: str
    runtime: Runtime


def runtime_for(source: str | os.PathLike, runtime: Runtime | None) -> Runtime:
    """`runtime` when given; else onnx for a .onnx file, torch for anything else."""
    if runtime is not None:
        if runtime not in RUNTIMES:
            raise UserError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
        return runtime
    return "onnx" if os.fspath(source).lower().endswith(ONNX_SUFFIX) else "torch"


def open_model(
    source: str | os.PathLike,
    *,
    runtime: Runtime | None = None,
    device: str = "auto",
    tracking_uri: str | None = None,
    batch_size: int | None = None,
) -> OpenedModel:
    """The model at `source` as an embedder on `device` ("auto", "cpu", "cuda", "cuda:N"), run by
    `runtime` (None: onnx for a .onnx file, else torch), `batch_size` crops per forward pass."""
    runtime = runtime_for(source, runtime)
    sizing = {} if batch_size is None else {"batch_size": batch_size}
    if runtime == "onnx":
        from facenet_core.inference.onnx import OnnxEmbedder

        embedder = OnnxEmbedder(source, providers=onnx_providers(device), **sizing)
        return OpenedModel(embedder, _onnx_identity(embedder), runtime)
    if os.fspath(source).lower().endswith(ONNX_SUFFIX):
        raise UserError(f"model {os.fspath(source)} is an ONNX file: add --runtime onnx (or leave --runtime out)")
    loaded = load_model(source, device, tracking_uri=tracking_uri)
    embedder = TorchEmbedder(loaded.model, loaded.contract, **sizing)
    return OpenedModel(embedder, model_identity(loaded, tracking_uri), runtime)


def onnx_providers(device: str) -> list[str] | None:
    if device == "auto":
        return None
    if device == "cpu":
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _onnx_identity(embedder: Any) -> str:
    from facenet_core.inference.onnx import CONTRACT_KEY

    stored = json.loads(embedder.session.get_modelmeta().custom_metadata_map[CONTRACT_KEY])
    return stored.get(SOURCE_MODEL_KEY) or f"sha256:{sha256_file(embedder.path)}"


def model_identity(loaded: LoadedModel, tracking_uri: str | None = None) -> str:
    """The identity of a loaded model (see the module docstring)."""
    path = Path(loaded.source)
    if loaded.kind != "mlflow":
        return f"sha256:{sha256_file(path)}"
    if path.is_dir():
        return f"sha256:{_folder_digest(path)}"
    alias = REGISTERED_ALIAS.match(loaded.source)
    if alias:
        from mlflow import MlflowClient

        name, label = alias.groups()
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        return f"models:/{name}/{client.get_model_version_by_alias(name, label).version}"
    return loaded.source


def _folder_digest(folder: Path) -> str:
    """sha256 over the relative paths and sha256 of every file under `folder`, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def export_model(
    source: str | os.PathLike, out_path: str | os.PathLike, *, device: str = "cpu", tracking_uri: str | None = None
) -> tuple[Path, str]:
    """Export the model at `source` (not an ONNX file) to ONNX at `out_path` with its contract and
    identity; returns the path written and the identity."""
    from facenet_core.inference.onnx import export_onnx

    if os.fspath(source).lower().endswith(ONNX_SUFFIX):
        raise UserError(f"model {os.fspath(source)} is already an ONNX file: export a checkpoint or an MLflow model")
    loaded = load_model(source, device, tracking_uri=tracking_uri)
    identity = model_identity(loaded, tracking_uri)
    contract = {**loaded.contract.model_dump(mode="json"), SOURCE_MODEL_KEY: identity}
    return export_onnx(loaded.model, contract, out_path), identity
