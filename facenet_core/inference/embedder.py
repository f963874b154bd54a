"""Embedders: face crops (uint8 N x S x S x 3 RGB, as the crop stage makes them) -> L2-normalised
float32 N x D embeddings, with the preprocessing of the model's contract.

`Embedder` is the interface every runtime implements (PyTorch here, ONNX Runtime in
facenet_core/inference/onnx.py): callers depend on it, not on a runtime.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from facenet_core.inference.model import ModelContract


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
