"""Device rules shared by every stage: turning a device setting into a torch device, full float32 on CUDA."""

from __future__ import annotations

import contextlib

import torch

from facenet_core.errors import UserError
from facenet_core.torch_settings import IEEE_FLOAT32


def resolve_device(requested: str | torch.device, local_rank: int = 0) -> torch.device:
    """`auto` -> this rank's CUDA device when there is one, else the CPU; CUDA without a GPU is an error."""
    if str(requested) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UserError(f"device={str(requested)!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={str(requested)!r} asked for CUDA but torch sees no GPU; use device=cpu or auto")
    return device


def ieee_float32(device: torch.device) -> contextlib.AbstractContextManager:
    """On CUDA, cuDNN convolutions and cuBLAS matmuls in IEEE float32 (no TF32) while inside.

    PyTorch lets cuDNN convolutions use TF32 on Ampere and later GPUs by default: a 10-bit mantissa,
    ~1e-3 relative error, enough to move a detector's boxes. The settings are process-wide: the
    first thread in records them, the last one out restores them. Elsewhere this does nothing.
    """
    return IEEE_FLOAT32 if device.type == "cuda" else contextlib.nullcontext()
