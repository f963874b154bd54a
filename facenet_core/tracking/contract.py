"""The preprocessing contract of a registered model: what a caller must do to an image before
embedding it, and how to compare two embeddings. Stored as JSON beside the model and as tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facenet_core.config.schema import Config

CONTRACT_FILE = "facenet_contract.json"
CROP_METHOD = "mtcnn-sandberg"
FAR_TARGET = 1e-3


def build_contract(config: Config, checkpoint: Mapping[str, Any], eval_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The contract of a checkpoint: crop, resize, normalisation, layout and decision thresholds.

    Values the checkpoint records (image size, mean/std) win over the config's.
    """
    far_threshold = eval_metrics.get("threshold_at_far")
    return {
        "crop_method": CROP_METHOD,
        "crop_image_size": config.crop_image_size,
        "crop_margin": config.crop_margin,
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


def contract_tags(contract: Mapping[str, Any]) -> dict[str, str]:
    """The contract as model-version tags `contract.<key>`; lists joined by commas."""
    tags = {}
    for key, value in contract.items():
        if value is None:
            continue
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        tags[f"contract.{key}"] = text
    return tags
