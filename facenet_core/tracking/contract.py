"""The preprocessing contract of a registered model: what a caller must do to an image before
embedding it, and how to compare two embeddings. Stored as JSON beside the model (and in its card);
the model version is tagged with its crop method and input size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facenet_core.config.schema import Config, DatasetConfig

CONTRACT_FILE = "facenet_contract.json"
CROP_METHOD = "mtcnn-sandberg"
ALIGNED_CROP_METHOD = "mtcnn-aligned-arcface"
NO_CROP = "none"
# The contract's crop method of each crop-stage method (CropOptions.method, config `crop`).
CONTRACT_CROP_METHODS = {"mtcnn": CROP_METHOD, "aligned": ALIGNED_CROP_METHOD}
PRE_ALIGNED = "pre-aligned"
UNALIGNED = "unaligned"
BY_PIPELINE = "pipeline"
BY_USER = "user"
PREPROCESSING_KEYS = ("crop_method", "crop_image_size", "crop_margin", "source_alignment", "crop_done_by")
TAG_PREFIX = "facenet.preprocessing."
FAR_TARGET = 1e-3


def source_aligned(dataset: DatasetConfig) -> bool:
    """Whether the dataset's faces come aligned: its own `aligned`, else its catalogue entry's."""
    if dataset.aligned or not dataset.catalogue:
        return dataset.aligned
    from facenet_core.ingest.catalogue import lookup

    return lookup(dataset.catalogue).aligned


def preprocessing(config: Config, *, aligned: bool | None = None, cropped_here: bool | None = None) -> dict[str, Any]:
    """What the training images went through: crop method (CROP_METHOD for MTCNN box crops,
    ALIGNED_CROP_METHOD for faces aligned on the ArcFace template, NO_CROP), crop size and margin
    (None for aligned crops: no margin applies), source alignment and who cropped them (the
    pipeline's crop stage, or the user for cropped_root / a given manifest).

    `aligned` and `cropped_here` default to what the config says (`dataset`, `cropped_root`,
    `manifest_path`); the training flow passes what it actually did.
    """
    if aligned is None:
        aligned = source_aligned(config.dataset)
    if cropped_here is None:
        cropped_here = not (config.cropped_root or config.manifest_path)
    cropped = config.crop in CONTRACT_CROP_METHODS
    return {
        "crop_method": CONTRACT_CROP_METHODS[config.crop] if cropped else NO_CROP,
        "crop_image_size": config.crop_image_size if cropped else None,
        "crop_margin": config.crop_margin if config.crop == "mtcnn" else None,
        "source_alignment": PRE_ALIGNED if aligned else UNALIGNED,
        "crop_done_by": (BY_PIPELINE if cropped_here else BY_USER) if cropped else None,
    }


def preprocessing_tags(record: Mapping[str, Any]) -> dict[str, str]:
    """A preprocessing record as MLflow run tags `facenet.preprocessing.<key>` ("none" for a value
    that does not apply, so a run without a crop says so)."""
    return {f"{TAG_PREFIX}{key}": NO_CROP if record[key] is None else str(record[key]) for key in PREPROCESSING_KEYS}


def build_contract(
    config: Config,
    checkpoint: Mapping[str, Any],
    eval_metrics: Mapping[str, Any],
    preprocessing_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract of a checkpoint: crop, resize, normalisation, layout and decision thresholds.

    Values the checkpoint records (image size, mean/std) win over the config's; the crop part is
    `preprocessing_record` (what the training flow did), else what the config says.
    """
    far_threshold = eval_metrics.get("threshold_at_far")
    record = dict(preprocessing_record or preprocessing(config))
    return {
        **{key: record[key] for key in PREPROCESSING_KEYS},
        "input_size": int(checkpoint.get("image_size") or config.image_size),
        "mean": [float(v) for v in checkpoint.get("normalize_mean") or config.normalize_mean],
        "std": [float(v) for v in checkpoint.get("normalize_std") or config.normalize_std],
        "value_range": "pixels/255 then (x - mean) / std",
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "embedding_dimension": int(checkpoint.get("embedding_dimension") or config.embedding_dimension),
        "embedding_norm": "L2, unit length",
        "distance_metric": config.distance_metric,
        "threshold_best_accuracy": float(eval_metrics["best_distance_threshold"]),
        "far_target": FAR_TARGET,
        "threshold_at_far": None if far_threshold is None else float(far_threshold),
    }
