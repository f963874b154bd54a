"""ONNX: export an embedding model with its contract, and embed crops with ONNX Runtime.

The exported graph takes `input`, float32 N x 3 x S x S normalised per the contract (N dynamic,
S the contract's `input_size`), and returns `embedding`, float32 N x D: what the PyTorch model
returns, L2-normalised by its head. The contract JSON is in the model's metadata under
`facenet_contract`, so the file alone says how to preprocess a face and compare embeddings.

Export uses PyTorch's torch.export-based exporter (`dynamo=True`, which needs onnxscript); the
TorchScript exporter is deprecated. `OnnxEmbedder` preprocesses exactly as `TorchEmbedder` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path
from facenet_core.inference.model import ModelContract
from facenet_core.tracking.pyfunc import BATCH_SIZE, prepare_faces

CONTRACT_KEY = "facenet_contract"
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
# The opset of PyTorch's ONNX function library: no version conversion; ONNX Runtime >= 1.14 runs it.
DEFAULT_OPSET = 18
EXAMPLE_BATCH = 2  # a batch of 1 would be specialised; any size exports a graph with a dynamic N
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _contract_values(contract: ModelContract | Mapping[str, Any]) -> dict[str, Any]:
    """The contract as the JSON-ready dict to store: a `build_contract` dict as given (all its keys),
    checked against `ModelContract`; a `ModelContract` as its fields."""
    if isinstance(contract, ModelContract):
        return contract.model_dump(mode="json")
    values = json.loads(json.dumps(dict(contract)))
    ModelContract.from_dict(values, "the contract to export")
    return values


def export_onnx(
    model: Any,
    contract: ModelContract | Mapping[str, Any],
    out_path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write `model` (an embedding nn.Module, on any device) as ONNX to `out_path`, atomically, with
    `contract` (a `ModelContract` or a `build_contract` dict) in its metadata; returns the path.

    The model is exported in eval mode and left in the mode it had. ValueError when its embeddings
    are not the contract's `embedding_dimension`; UserError for an opset below `DEFAULT_OPSET`.
    """
    import torch

    from facenet_core.models import unwrap_model

    if opset < DEFAULT_OPSET:
        raise UserError(f"opset {opset} is too old for the exporter: give {DEFAULT_OPSET} or more")
    values = _contract_values(contract)
    size, dimension = values["input_size"], values["embedding_dimension"]
    model = unwrap_model(model)
    example = torch.zeros(EXAMPLE_BATCH, 3, size, size, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            shape = tuple(model(example).shape)
        if shape != (EXAMPLE_BATCH, dimension):
            raise ValueError(
                f"the model returns embeddings of shape {shape[1:]} for {size} px input, "
                f"the contract says ({dimension},): export the model with its own contract"
            )
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    finally:
        model.train(was_training)
    program.model.metadata_props[CONTRACT_KEY] = json.dumps(values, sort_keys=True)
    with atomic_path(out_path) as tmp:
        program.save(tmp, external_data=False)
    return Path(out_path)


def _providers(requested: Sequence[str] | None) -> list[str]:
    """`requested` when ONNX Runtime has them all; by default CUDA when available, then CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if requested is None:
        return [name for name in PREFERRED_PROVIDERS if name in available]
    missing = [name for name in requested if name not in available]
    if missing or not requested:
        raise UserError(
            f"ONNX Runtime providers {missing or list(requested)} are not available here: "
            f"choose from {', '.join(available)}"
        )
    return list(requested)


class OnnxEmbedder:
    """An exported model run by ONNX Runtime: crops -> L2-normalised embeddings, preprocessed with
    the contract in the file's metadata exactly as `TorchEmbedder` does, `batch_size` crops per run.

    `providers`: ONNX Runtime execution providers in order of preference (default: CUDA when this
    onnxruntime build has it, then CPU).
    """

    def __init__(
        self, path: str | os.PathLike, providers: Sequence[str] | None = None, batch_size: int = BATCH_SIZE
    ) -> None:
        import onnxruntime
        from onnxruntime.capi import onnxruntime_pybind11_state as errors

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ONNX model {self.path} does not exist: give the .onnx file `facenet export` wrote")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=_providers(providers))
        except (errors.InvalidProtobuf, errors.InvalidGraph, errors.NotImplemented, errors.Fail) as error:
            raise UserError(f"{self.path} is not a readable ONNX model ({error}): export it again") from None
        stored = self.session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY)
        inputs = [item.name for item in self.session.get_inputs()]
        if stored is None or inputs != [INPUT_NAME]:
            raise UserError(
                f"ONNX model {self.path} was not exported by facenet-flow (no {CONTRACT_KEY} metadata "
                f"or inputs {inputs} instead of [{INPUT_NAME!r}]): export it with `facenet export`"
            )
        self._contract = ModelContract.from_dict(json.loads(stored), f"ONNX model {self.path}")
        self._preprocessing = self._contract.model_dump()
        self.batch_size = batch_size

    @property
    def contract(self) -> ModelContract:
        return self._contract

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, in order."""
        return self.session.get_providers()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Float32 N x D unit-length embeddings of uint8 N x S x S x 3 RGB crops (N may be 0)."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3:
            raise ValueError(f"expected uint8 crops of shape (N, S, S, 3), got {crops.dtype} {crops.shape}")
        out = np.zeros((len(crops), self._contract.embedding_dimension), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = prepare_faces(crops[start : start + self.batch_size], self._preprocessing)
            out[start : start + len(batch)] = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return out


class OnnxModule(torch.nn.Module):
    """An exported model as a module: normalised float32 N x 3 x S x S in, embeddings out, run by the
    embedder's ONNX Runtime session, so code written for a PyTorch model (the evaluation) runs the
    exported graph unchanged."""

    def __init__(self, embedder: OnnxEmbedder) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self.embedder.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        return torch.from_numpy(out).to(images.device)
