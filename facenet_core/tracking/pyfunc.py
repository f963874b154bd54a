"""The `facenet` model's python_function flavour: photos in, one embedding per photo out.

Input: a DataFrame with a column `image` of base64-encoded image files (JPEG, PNG...: what a JSON
client sends). With the param `detect` true (the default) each photo goes through the crop stage's
rules (`facenet_core.inference.faces.detect_faces` with the contract's crop method, size and margin, one
face per photo); with `detect` false each image is taken as a face crop already made that way and
only resized to the contract's crop size. The crops are embedded by `TorchEmbedder` with the
contract's preprocessing. Output: a DataFrame, one row per input: `embedding` (list of float, unit
length; None when no face was found), `face_found`, `box` (x1, y1, x2, y2 in the photo, or None)
and `score` (the detector's confidence, or None).

The network is rebuilt on load from `facenet_weights.pt` (architecture, embedding size, state
dict), read with torch's weights-only unpickler: loading never needs MLflow's pickle
deserialisation. Tensor-level use: the pytorch flavour (`mlflow.pytorch.load_model`, the eager
module, fine-tunable) takes `prepare_faces`' batches; `load_model(...).get_raw_model().embedder`
is the `TorchEmbedder` of the loaded model.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_core.tracking.contract import CONTRACT_FILE

if TYPE_CHECKING:  # embedder.py imports this module: no import cycle at run time
    from facenet_core.inference.embedder import Embedder

BATCH_SIZE = 64
IMAGE_COLUMN = "image"
DETECT_PARAM = "detect"
OUTPUT_COLUMNS = ("embedding", "face_found", "box", "score")
WEIGHTS_FILE = "facenet_weights.pt"
# The MLmodel's model_config; `mlflow.pyfunc.load_model(uri, model_config={"device": "auto"})` overrides it.
MODEL_CONFIG = {"device": "cpu", "batch_size": BATCH_SIZE}


class PhotoEmbedder:
    """The served model: decodes, detects and crops (or takes crops), then embeds with `embedder`
    (a `TorchEmbedder` when MLflow loads it; any `Embedder` works)."""

    def __init__(self, embedder: Embedder, device: str = "cpu") -> None:
        self.embedder = embedder
        self.device = device

    def get_raw_model(self) -> PhotoEmbedder:
        """What MLflow's `PyFuncModel.get_raw_model()` returns: this object, its `embedder` and contract."""
        return self

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        """One output row per row of `model_input` (module docstring); bad input is an MlflowException
        with INVALID_PARAMETER_VALUE (HTTP 400 when served)."""
        from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

        from facenet_core.errors import UserError

        try:
            images = [decode_image(text, index) for index, text in enumerate(image_column(model_input))]
            if _detect(params):
                return self._detected(images)
            return self._given_crops(images)
        except UserError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None

    def _detected(self, images: list[np.ndarray]) -> Any:
        from facenet_core.inference.faces import detect_faces

        options = self.embedder.contract.crop_options(device=self.device)
        found = [photo.faces[0] if photo.faces else None for photo in detect_faces(images, options)]
        embeddings = iter(self._embed([face.crop for face in found if face is not None]))
        rows = [
            (None, False, None, None) if face is None else (next(embeddings), True, list(face.box), face.score)
            for face in found
        ]
        return result_frame(rows)

    def _given_crops(self, images: list[np.ndarray]) -> Any:
        from facenet_core.detect.select import resized_crop

        size = self.embedder.contract.crop_image_size
        crops = [
            image
            if size is None or image.shape[:2] == (size, size)
            else np.asarray(resized_crop(image, (0, 0, image.shape[1], image.shape[0]), size))
            for image in images
        ]
        return result_frame([(embedding, True, None, None) for embedding in self._embed(crops)])

    def _embed(self, crops: Sequence[np.ndarray]) -> list[list[float]]:
        """Embeddings of crops, those of one size embedded together (all of them, for a cropped model)."""
        embeddings: list[list[float]] = [[] for _ in crops]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, crop in enumerate(crops):
            by_shape.setdefault(crop.shape, []).append(index)
        for indices in by_shape.values():
            for index, row in zip(indices, self.embedder.embed(np.stack([crops[i] for i in indices])), strict=True):
                embeddings[index] = row.tolist()
        return embeddings


def _detect(params: Mapping[str, Any] | None) -> bool:
    value = (params or {}).get(DETECT_PARAM, True)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return bool(value)


def image_column(model_input: Any) -> list[Any]:
    """The `image` column of a DataFrame (or a mapping of columns) as a list."""
    from facenet_core.errors import UserError

    try:
        column = model_input[IMAGE_COLUMN]
    except (KeyError, TypeError, IndexError):
        raise UserError(
            f"expected a DataFrame with a column {IMAGE_COLUMN!r} of base64-encoded image files, got "
            f"{type(model_input).__name__}"
        ) from None
    return list(column)


def decode_image(text: Any, index: int) -> np.ndarray:
    """uint8 H x W x 3 RGB pixels of a base64-encoded image file, decoded as the crop stage decodes files."""
    from PIL import Image

    from facenet_core.errors import UserError
    from facenet_core.images import load_rgb

    if not isinstance(text, str):
        raise UserError(f"{IMAGE_COLUMN} {index}: expected a base64 string, got {type(text).__name__}")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{IMAGE_COLUMN} {index}: not valid base64 (encode the image file's bytes)") from None
    try:
        return load_rgb(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UserError(
            f"{IMAGE_COLUMN} {index}: not an image file ({type(error).__name__}: {error}); send JPEG or PNG bytes"
        ) from None


def result_frame(rows: Sequence[tuple[list[float] | None, bool, list[int] | None, float | None]]) -> Any:
    """The output DataFrame: `OUTPUT_COLUMNS`, one row per input; a missing value is None (JSON null,
    never NaN)."""
    import pandas as pd

    columns = {
        "embedding": [embedding for embedding, _, _, _ in rows],
        "face_found": [bool(found) for _, found, _, _ in rows],
        "box": [None if box is None else [int(v) for v in box] for _, _, box, _ in rows],
        "score": [None if score is None else float(score) for _, _, _, score in rows],
    }
    dtypes = {"face_found": bool}
    return pd.DataFrame({name: pd.Series(values, dtype=dtypes.get(name, object)) for name, values in columns.items()})


def read_contract(model_dir: str | Path) -> dict[str, Any]:
    """The contract JSON saved beside a logged `facenet` model."""
    return json.loads((Path(model_dir) / CONTRACT_FILE).read_text(encoding="utf-8"))


def prepare_faces(images: Sequence[Any], contract: Mapping[str, Any]) -> np.ndarray:
    """Aligned face crops (uint8 H x W x 3 RGB arrays or PIL images) as the model's float32 input:
    the evaluation transform, its resize per image and its normalisation on the whole batch at once
    (bit for bit `eval_transform`, as `facenet evaluate` does)."""
    import torch
    from PIL import Image

    from facenet_core.data.transforms import eval_pixels, normalize_pixels

    size = contract["input_size"]
    pixels = []
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(
                    f"image {index}: expected a uint8 H x W x 3 RGB array, got {array.dtype} {array.shape}"
                )
            image = Image.fromarray(array)
        pixels.append(eval_pixels(image, size))
    if not pixels:
        return np.zeros((0, 3, size, size), np.float32)
    batch = normalize_pixels(torch.from_numpy(np.stack(pixels)), contract["mean"], contract["std"])
    return batch.contiguous().numpy()


def _load_pyfunc(path: str, model_config: Mapping[str, Any] | None = None) -> PhotoEmbedder:
    """MLflow's loader hook: `path` is the model folder (weights file, contract JSON)."""
    from mlflow.exceptions import MlflowException

    from facenet_core.devices import resolve_device
    from facenet_core.inference.embedder import TorchEmbedder
    from facenet_core.inference.model import ModelContract
    from facenet_core.train.checkpoints import load_model_from_checkpoint

    settings = {**MODEL_CONFIG, **(model_config or {})}
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise MlflowException(
            f"model folder {path} has no {WEIGHTS_FILE}: it was registered by an older facenet-flow; "
            "register its checkpoint again, or load its pytorch flavour with mlflow.pytorch.load_model"
        )
    device = resolve_device(str(settings["device"]))
    model, _ = load_model_from_checkpoint(weights, device=device)
    contract = ModelContract.from_dict(read_contract(path), path)
    return PhotoEmbedder(TorchEmbedder(model, contract, int(settings["batch_size"])), str(device))
