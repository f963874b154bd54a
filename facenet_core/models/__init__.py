"""Backbones with the seed's embedding head: `create_model` is the one entry point."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn

from facenet_core.config.schema import ARCHITECTURES
from facenet_core.models.head import EmbeddingHead
from facenet_core.models.pretrained import load_backbone_weights, timm_cache_path, torchvision_cache_path

TIMM_NAMES = {"inceptionresnetv2": "inception_resnet_v2"}
TORCHVISION_NAMES = {"mobilenetv2": "mobilenet_v2"}


def _backbone(architecture: str) -> nn.Module:
    if architecture in TIMM_NAMES:
        import timm

        return timm.create_model(TIMM_NAMES[architecture], pretrained=False)
    return torchvision.models.get_model(TORCHVISION_NAMES.get(architecture, architecture), weights=None)


def _cached_weights_file(architecture: str, backbone: nn.Module) -> Path:
    """The library's cached ImageNet file for `architecture`; FileNotFoundError when absent."""
    if architecture in TIMM_NAMES:
        hub_id = backbone.pretrained_cfg.get("hf_hub_id")
        path = timm_cache_path(hub_id) if hub_id else None
        if path is None:
            raise FileNotFoundError(
                f"pretrained ImageNet weights for {architecture} are not in the Hugging Face cache "
                f"({hub_id}); fetch them with `huggingface-cli download {hub_id}` or pass pretrained_path"
            )
        return path
    weights = torchvision.models.get_model_weights(TORCHVISION_NAMES.get(architecture, architecture)).DEFAULT
    path = torchvision_cache_path(weights.url)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained ImageNet weights for {architecture} are not available offline: expected {path} "
            f"(download {weights.url} there, or pass pretrained_path)"
        )
    return path


def _attach_head(backbone: nn.Module, architecture: str, embedding_dimension: int) -> nn.Module:
    if architecture.startswith("resnet"):
        backbone.fc = EmbeddingHead(backbone.fc.in_features, embedding_dimension)
    elif architecture == "mobilenetv2":
        # The seed replaced the whole classifier (dropout included) with the bias-free linear layer.
        backbone.classifier = EmbeddingHead(backbone.last_channel, embedding_dimension)
    else:
        backbone.classif = EmbeddingHead(backbone.num_features, embedding_dimension)
    return backbone


def create_model(
    architecture: str,
    embedding_dimension: int,
    pretrained: bool = False,
    pretrained_path: str | os.PathLike | None = None,
) -> nn.Module:
    """A backbone whose forward returns L2-normalised embeddings of shape (B, embedding_dimension).

    With `pretrained`, ImageNet weights come from `pretrained_path` or the library's local cache;
    a missing file raises FileNotFoundError instead of starting a download.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"model_architecture={architecture!r} is not one of {ARCHITECTURES}")
    backbone = _backbone(architecture)
    if pretrained or pretrained_path:
        path = Path(pretrained_path) if pretrained_path else _cached_weights_file(architecture, backbone)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_path {path} does not exist")
        load_backbone_weights(backbone, path)
    return _attach_head(backbone, architecture, embedding_dimension)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and torch.compile wrappers (whose state dict has no prefix)."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


__all__ = ["ARCHITECTURES", "EmbeddingHead", "create_model", "unwrap_model"]
