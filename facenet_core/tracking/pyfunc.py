"""The `facenet` model's pyfunc flavour: embed a batch of aligned, normalised face crops.

Input (the model signature): float32 array N x 3 x S x S, RGB, pixels/255 normalised with the
contract's mean and std, S = contract `input_size`. `prepare_faces` turns aligned uint8 crops
(H x W x 3 RGB arrays or PIL images, any size) into exactly that, with the evaluation transform.
Output: float32 N x D, L2-normalised embeddings. MLflow calls `_load_pyfunc` on load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facenet_core.tracking.contract import CONTRACT_FILE

BATCH_SIZE = 64


class FaceEmbedder:
    """A PyTorch embedding model plus its preprocessing contract, behind MLflow's `predict`."""

    def __init__(self, model: Any, contract: Mapping[str, Any], batch_size: int = BATCH_SIZE):
        self.model = model.eval()
        self.contract = dict(contract)
        self.batch_size = batch_size

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """Embeddings (N x D float32) of a float32 N x 3 x S x S batch, in chunks of `batch_size`."""
        import torch

        batch = np.asarray(model_input, dtype=np.float32)
        size = self.contract["input_size"]
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(
                f"expected a float32 batch of shape (N, 3, {size}, {size}) normalised per the model's "
                f"contract, got shape {batch.shape}; use facenet_core.tracking.pyfunc.prepare_faces"
            )
        device = next(self.model.parameters()).device
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                tensor = torch.from_numpy(batch[start : start + self.batch_size]).to(device)
                chunks.append(self.model(tensor).float().cpu().numpy())
        dimension = self.contract["embedding_dimension"]
        return np.concatenate(chunks) if chunks else np.zeros((0, dimension), dtype=np.float32)


def read_contract(model_dir: str | Path) -> dict[str, Any]:
    """The contract JSON saved beside a logged `facenet` model."""
    return json.loads((Path(model_dir) / CONTRACT_FILE).read_text(encoding="utf-8"))


def prepare_faces(images: Sequence[Any], contract: Mapping[str, Any]) -> np.ndarray:
    """Aligned face crops (uint8 H x W x 3 RGB arrays or PIL images) as the model's float32 input."""
    from PIL import Image

    from facenet_core.data.transforms import eval_transform

    transform = eval_transform(contract["input_size"], contract["mean"], contract["std"])
    tensors = []
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(
                    f"image {index}: expected a uint8 H x W x 3 RGB array, got {array.dtype} {array.shape}"
                )
            image = Image.fromarray(array)
        tensors.append(transform(image).numpy())
    size = contract["input_size"]
    return np.stack(tensors).astype(np.float32) if tensors else np.zeros((0, 3, size, size), np.float32)


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> FaceEmbedder:
    """MLflow's loader hook: `path` is the model folder (pytorch flavour + contract JSON)."""
    import mlflow.pytorch

    device = (model_config or {}).get("device", "cpu")
    model = mlflow.pytorch.load_model(path, map_location=device)
    return FaceEmbedder(model, read_contract(path), batch_size=int((model_config or {}).get("batch_size", BATCH_SIZE)))
