"""Device rules shared by every stage: turning a device setting into a torch device, full float32 on CUDA."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from facenet_core.errors import UserError


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


_precision_lock = threading.Lock()
_precision_users = 0
_precision_previous: list[str] = []


def _float32_settings() -> tuple:
    return torch.backends.cudnn.conv, torch.backends.cuda.matmul


@contextmanager
def ieee_float32(device: torch.device) -> Iterator[None]:
    """On CUDA, cuDNN convolutions and cuBLAS matmuls in IEEE float32 (no TF32) while inside.

    PyTorch lets cuDNN convolutions use TF32 on Ampere and later GPUs by default: a 10-bit mantissa,
    ~1e-3 relative error, enough to move a detector's boxes. The settings are process-wide: the
    first thread in records them, the last one out restores them. Elsewhere this does nothing.
    """
    global _precision_users, _precision_previous
    if device.type != "cuda":
        yield
        return
    with _precision_lock:
        if _precision_users == 0:
            _precision_previous = [setting.fp32_precision for setting in _float32_settings()]
            for setting in _float32_settings():
                setting.fp32_precision = "ieee"
        _precision_users += 1
    try:
        yield
    finally:
        with _precision_lock:
            _precision_users -= 1
            if _precision_users == 0:
                for setting, value in zip(_float32_settings(), _precision_previous, strict=True):
                    setting.fp32_precision = value
