"""A model from anywhere, with its preprocessing contract: an MLflow model URI or folder, a project
checkpoint, or a seed checkpoint.

`ModelContract` is the typed form of the contract dict that `facenet_core.tracking.contract.
build_contract` writes beside a registered model. A checkpoint carries no contract file, so its
contract is made from what the checkpoint records; the preprocessing of a model is always its
contract's, never a default that may not match it.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from facenet_core.config.schema import DistanceMetric
from facenet_core.detect.options import CropOptions
from facenet_core.devices import resolve_device
from facenet_core.errors import UserError
from facenet_core.tracking.contract import CONTRACT_CROP_METHODS, CONTRACT_FILE, CROP_METHOD, FAR_TARGET

# The seed's published models (e.g. model_resnet34_triplet.pt) record no preprocessing: they were
# trained on MTCNN crops of 224 px, margin 0, resized to 140 px and normalised with these values.
SEED_CROP_SIZE = 224
SEED_CROP_MARGIN = 0
SEED_INPUT_SIZE = 140
SEED_MEAN = (0.6071, 0.4609, 0.3944)
SEED_STD = (0.2457, 0.2175, 0.2129)
# What a project checkpoint's recorded config falls back to: the crop stage's defaults.
DEFAULT_CROP_SIZE = CropOptions().image_size
DEFAULT_CROP_MARGIN = CropOptions().margin
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
FAR_SPEC = re.compile(r"^far(.+)$")
RUN_MODEL_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-f]+)/(?P<name>[A-Za-z0-9_.-]+)/?$")
REGISTERED_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[0-9]+))/?$")

Triple = tuple[float, float, float]
Positive = Annotated[float, Field(gt=0)]


class ModelContract(BaseModel):
    """What a model expects of a face and how to compare two of its embeddings.

    Crop (`crop_method`: "mtcnn-sandberg", the face box with its margin; "mtcnn-aligned-arcface",
    the face aligned on its landmarks, no margin; or "none"; size and margin), resize to `input_size`,
    pixels/255 then (x - mean) / std, RGB, NCHW float32; embeddings of `embedding_dimension` of
    unit length, compared with `distance_metric`: a pair is the same person below the threshold.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    crop_method: str
    crop_image_size: int | None = Field(ge=1)
    crop_margin: int | None = Field(ge=0)
    input_size: int = Field(ge=1)
    mean: Triple
    std: tuple[Positive, Positive, Positive]
    embedding_dimension: int = Field(ge=1)
    distance_metric: DistanceMetric
    threshold_best_accuracy: float | None
    threshold_at_far: float | None = None
    far_target: float = FAR_TARGET

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str) -> ModelContract:
        """The contract of a `build_contract` dict; a UserError naming `source` when it is not one."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise UserError(f"model contract of {source} is invalid ({problems}): re-register the model") from None

    def crop_options(self, **settings: Any) -> CropOptions:
        """The crop stage's options that make this model's crops (`settings`: device, batch_size...):
        its crop method, size and margin (none for aligned crops)."""
        methods = {contract: method for method, contract in CONTRACT_CROP_METHODS.items()}
        method = methods.get(self.crop_method)
        if method is None or self.crop_image_size is None or (method == "mtcnn" and self.crop_margin is None):
            raise UserError(
                f"this model was trained on faces cropped outside the pipeline (crop method {self.crop_method!r}): "
                "photos cannot be cropped as its training images were; give it crops made that way"
            )
        margin = self.crop_margin if method == "mtcnn" else 0
        return CropOptions(image_size=self.crop_image_size, margin=margin, method=method, **settings)

    def threshold(self, spec: str) -> tuple[float, str]:
        """The distance threshold `spec` names and where it comes from.

        "best": the threshold of best accuracy on the model's evaluation; "far1e-3": the threshold
        for that false accept rate (models evaluated for it only); a number: that number.
        """
        spec = spec.strip()
        if spec == "best":
            if self.threshold_best_accuracy is None:
                raise UserError(
                    "threshold 'best': this model records no best-accuracy threshold (not evaluated yet): "
                    "give a number, or evaluate the model first"
                )
            return self.threshold_best_accuracy, "best-accuracy threshold of the model's evaluation"
        far = FAR_SPEC.match(spec)
        if far:
            return self._far_threshold(spec, far.group(1))
        try:
            value = float(spec)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise UserError(
                f"threshold {spec!r} is not a threshold: give best, far{self.far_target:g} or a distance >= 0"
            )
        return value, "given"

    def _far_threshold(self, spec: str, target: str) -> tuple[float, str]:
        try:
            rate = float(target)
        except ValueError:
            rate = math.nan
        if not math.isclose(rate, self.far_target, rel_tol=1e-9):
            raise UserError(f"threshold {spec!r}: this model records a threshold for far{self.far_target:g} only")
        if self.threshold_at_far is None:
            raise UserError(
                f"threshold {spec!r}: this model records no threshold at FAR {self.far_target:g} (its evaluation "
                "did not compute one): use best or a number"
            )
        return self.threshold_at_far, f"threshold at FAR {self.far_target:g} of the model's evaluation"


SourceKind = Literal["mlflow", "checkpoint", "seed checkpoint"]


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode on its device, its contract, and what it was loaded from."""

    model: nn.Module
    contract: ModelContract
    source: str
    kind: SourceKind


def load_model(
    source: str | os.PathLike, device: str | torch.device = "cpu", *, tracking_uri: str | None = None
) -> LoadedModel:
    """The model at `source` with its contract, on `device` ("auto", "cpu", "cuda", "cuda:N").

    `source`: an MLflow model URI (`models:/facenet@champion`, `models:/facenet/3`, `runs:/<id>/model`,
    read from `tracking_uri`, else MLflow's configured store) or a logged model's folder (the
    pytorch flavour with facenet_contract.json beside it); a project checkpoint (.pt holding
    `image_size`); or a seed checkpoint (the seed's keys only: its published preprocessing).
    """
    device = resolve_device(device)
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        return _from_model_folder(path, device, text)
    if path.is_file():
        return _from_checkpoint(path, device)
    if URI_SCHEME.match(text):
        return _from_mlflow(text, device, tracking_uri)
    raise UserError(
        f"model {text!r} is neither a file, a folder nor an MLflow model URI: give a checkpoint (.pt), "
        "a model folder or a URI such as models:/facenet@champion"
    )


def _from_mlflow(uri: str, device: torch.device, tracking_uri: str | None) -> LoadedModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="facenet-model-") as folder:
        try:
            location = _registered_location(uri, tracking_uri) if tracking_uri else uri
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=folder, tracking_uri=tracking_uri, registry_uri=tracking_uri
            )
        except MlflowException as error:
            store = tracking_uri or mlflow.get_tracking_uri()
            raise UserError(f"model {uri} cannot be fetched from {store}: {error.message}") from None
        loaded = _from_model_folder(Path(local), device, uri)
    return loaded


def _registered_location(uri: str, tracking_uri: str) -> str:
    """Where the files of a registered version (`models:/<name>@<alias>`, `models:/<name>/<n>`) or of
    a run's logged model (`runs:/<run_id>/<name>`) lie, read from `tracking_uri`'s store: MLflow
    resolves those URIs against its process-wide store only. Any other URI is returned as it is."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    registered, logged = REGISTERED_URI.match(uri), RUN_MODEL_URI.match(uri)
    if registered is not None:
        name, alias, version = registered.group("name", "alias", "version")
        if alias is not None:
            version = client.get_model_version_by_alias(name, alias).version
        return client.get_model_version_download_uri(name, version)
    if logged is not None:
        run = client.get_run(logged.group("run_id"))
        condition = f"source_run_id = '{run.info.run_id}' AND name = '{logged.group('name')}'"
        models = client.search_logged_models([run.info.experiment_id], filter_string=condition, max_results=1)
        if models:
            return models[0].artifact_location
    return uri


def _from_model_folder(folder: Path, device: torch.device, source: str) -> LoadedModel:
    """A logged `facenet` model: the pickled module of the pytorch flavour and its contract JSON."""
    import json

    import mlflow.pytorch

    contract_file = folder / CONTRACT_FILE
    if not contract_file.is_file():
        raise UserError(
            f"model {source} has no {CONTRACT_FILE}: not a facenet model (register it with facenet-flow), "
            "or give its checkpoint instead"
        )
    contract = ModelContract.from_dict(json.loads(contract_file.read_text(encoding="utf-8")), source)
    model = mlflow.pytorch.load_model(str(folder), map_location=device)
    return LoadedModel(model.to(device).eval(), contract, source, "mlflow")


def _from_checkpoint(path: Path, device: torch.device) -> LoadedModel:
    from facenet_core.train.checkpoints import load_model_from_checkpoint

    model, checkpoint = load_model_from_checkpoint(path, device=device)
    if "image_size" in checkpoint:
        return LoadedModel(model, checkpoint_contract(checkpoint, str(path)), str(path), "checkpoint")
    return LoadedModel(model, seed_contract(checkpoint, str(path)), str(path), "seed checkpoint")


def _threshold(checkpoint: Mapping[str, Any]) -> float | None:
    value = checkpoint.get("best_distance_threshold")
    return None if value is None else float(value)


def checkpoint_contract(checkpoint: Mapping[str, Any], source: str) -> ModelContract:
    """A project checkpoint's contract: the input size, normalisation and embedding size it records,
    its evaluated threshold when recorded, the crop and distance of its recorded config (else the
    crop stage's defaults and euclidean; `crop: aligned` gives the aligned crop method, no margin)."""
    config = checkpoint.get("config") or {}
    crop = config.get("crop", "mtcnn")
    cropped = crop in CONTRACT_CROP_METHODS
    values = {
        "crop_method": CONTRACT_CROP_METHODS[crop] if cropped else crop,
        "crop_image_size": config.get("crop_image_size", DEFAULT_CROP_SIZE) if cropped else None,
        "crop_margin": config.get("crop_margin", DEFAULT_CROP_MARGIN) if crop == "mtcnn" else None,
        "input_size": checkpoint["image_size"],
        "mean": checkpoint.get("normalize_mean"),
        "std": checkpoint.get("normalize_std"),
        "embedding_dimension": checkpoint["embedding_dimension"],
        "distance_metric": config.get("distance_metric", "euclidean"),
        "threshold_best_accuracy": _threshold(checkpoint),
    }
    return ModelContract.from_dict(values, f"checkpoint {source}")


def seed_contract(checkpoint: Mapping[str, Any], source: str) -> ModelContract:
    """A seed checkpoint's contract: the seed's published preprocessing, its embedding size and threshold."""
    values = {
        "crop_method": CROP_METHOD,
        "crop_image_size": SEED_CROP_SIZE,
        "crop_margin": SEED_CROP_MARGIN,
        "input_size": SEED_INPUT_SIZE,
        "mean": SEED_MEAN,
        "std": SEED_STD,
        "embedding_dimension": checkpoint["embedding_dimension"],
        "distance_metric": "euclidean",
        "threshold_best_accuracy": _threshold(checkpoint),
    }
    return ModelContract.from_dict(values, f"seed checkpoint {source}")
