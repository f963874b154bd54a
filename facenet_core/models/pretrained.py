"""ImageNet weights from a local file or the library's cache; never a download."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

HEAD_PREFIXES = ("fc.", "classifier.", "classif.", "last_linear.")


def torchvision_cache_path(url: str) -> Path:
    """Where torchvision keeps the file it would download from `url` (TORCH_HOME aware)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def timm_cache_path(hf_hub_id: str) -> Path | None:
    """The cached weights file of a timm model on the Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hf_hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (weights only)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"pretrained weights {path} do not hold a state dict")
    return state


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Load ImageNet weights into `backbone`, ignoring the classifier the embedding head replaces."""
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(HEAD_PREFIXES)}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    if missing or unexpected:
        raise ValueError(
            f"pretrained weights {path} do not fit this architecture: missing {missing[:5]} unexpected {unexpected[:5]}"
        )
