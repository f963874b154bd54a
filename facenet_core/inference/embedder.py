"""Embedders: face crops (uint8 N x S x S x 3 RGB, as the crop stage makes them) -> L2-normalised
float32 N x D embeddings, with the preprocessing of the model's contract.

`Embedder` is the interface every runtime implements (PyTorch here, ONNX Runtime in
facenet_core/inference/onnx.py): callers depend on it, not on a runtime.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from facenet_core.inference.model import ModelContract
from facenet_core.models.inference import inference_model
from facenet_core.tracking.pyfunc import BATCH_SIZE, prepare_faces


@runtime_checkable
class Embedder(Protocol):
    """A model that embeds face crops, with the contract that says how they were preprocessed."""

    @property
    def contract(self) -> ModelContract:
        """What the model expects (crop, input size, normalisation) and how to compare embeddings."""
        ...

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Float32 N x D unit-length embeddings of uint8 N x S x S x 3 RGB crops (N may be 0)."""
        ...


class TorchEmbedder:
    """A PyTorch model (eval mode, on its device) embedding crops with the evaluation transform, as
    `facenet evaluate` and the served model's `prepare_faces` do, `batch_size` crops per forward pass.

    It runs the model as `facenet evaluate` does, batch norms folded (`inference_model`): `model` is
    copied, so later changes to its weights do not reach the embedder."""

    def __init__(self, model: nn.Module, contract: ModelContract, batch_size: int = BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = inference_model(model).eval()
        self._contract = contract
        self.batch_size = batch_size

    @property
    def contract(self) -> ModelContract:
        return self._contract

    @torch.inference_mode()
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Float32 N x D unit-length embeddings of uint8 N x S x S x 3 RGB crops (N may be 0)."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3:
            raise ValueError(f"expected uint8 crops of shape (N, S, S, 3), got {crops.dtype} {crops.shape}")
        device = next(self.model.parameters()).device
        contract = self._contract.model_dump()
        dimension = self._contract.embedding_dimension
        out = np.zeros((len(crops), dimension), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = prepare_faces(crops[start : start + self.batch_size], contract)
            vectors = self.model(torch.from_numpy(batch).to(device))
            if vectors.shape[1] != dimension:
                raise ValueError(f"the model gives {vectors.shape[1]}-d embeddings, its contract says {dimension}")
            out[start : start + len(batch)] = vectors.float().cpu().numpy()
        return out
