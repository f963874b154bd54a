"""One rule for turning a device setting into a torch device, shared by every stage."""

from __future__ import annotations

import torch


def resolve_device(requested: str | torch.device, local_rank: int = 0) -> torch.device:
    """`auto` -> this rank's CUDA device when there is one, else the CPU; CUDA without a GPU is an error."""
    if str(requested) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(requested)!r} asked for CUDA but torch sees no GPU; use device=cpu or auto")
    return device
