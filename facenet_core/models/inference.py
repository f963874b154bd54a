"""The model as evaluation and inference run it: an eval-mode copy whose batch norms are folded into
the convolutions before them.

In eval mode a BatchNorm2d is a per-channel affine map of fixed statistics, so the convolution it
follows can absorb it (scaled weights, shifted bias): one pass over each activation instead of two,
the same function up to float rounding. The copy is traced with torch.fx and the Conv2d+BatchNorm2d
pairs fused (torch.fx.experimental.optimization.fuse); the model given is never modified, so a
training model keeps its batch norms, their running statistics and its mode. A model without batch
norms, or one that torch.fx cannot trace (data-dependent control flow, wrappers), is returned as it is.
"""

from __future__ import annotations

import copy
import logging

from torch import nn
from torch.fx.experimental.optimization import fuse

from facenet_core.models import unwrap_model

log = logging.getLogger(__name__)


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def inference_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with each Conv+BatchNorm pair folded into one convolution, on the
    model's device; `model` itself (untouched) when it has no batch norm or cannot be traced.

    The copy holds no gradients and shares nothing with `model`: later training steps of `model` do
    not reach it, so make a new one after the weights change.
    """
    plain = unwrap_model(model)
    if not _has_batch_norm(plain):
        return model
    copied = copy.deepcopy(plain).eval().requires_grad_(False)
    try:
        folded = fuse(copied, inplace=True)
    except Exception as error:  # any tracing failure means: run the model as it is
        log.info("batch norms left unfolded (%s cannot be traced: %s)", type(plain).__name__, error)
        return model
    return folded.eval()
