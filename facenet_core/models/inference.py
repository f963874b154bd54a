"""The model as evaluation and inference run it: an eval-mode copy whose batch norms are folded into
the convolutions before them.

In eval mode a BatchNorm2d is a per-channel affine map of fixed statistics, so the convolution it
follows can absorb it (scaled weights, shifted bias): one pass over each activation instead of two,
the same function up to float rounding (the weights as torch.nn.utils.fusion computes them). The
copy is traced with torch.fx and each Conv2d whose only use is a BatchNorm2d absorbs it in place (one
copy of the weights: on this project's VMs fresh memory costs ~0.3 s of CPU per 85 MB, where
torch.fx.experimental.optimization.fuse copies the weights three times). The model given is never
modified, so a training model keeps its batch norms, their running statistics and its mode. A model
without batch norms, or one that torch.fx cannot trace (data-dependent control flow, wrappers), is
returned as it is.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter

import torch
from torch import fx, nn

from facenet_core.models import unwrap_model

log = logging.getLogger(__name__)


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def _absorb(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Scale `conv`'s weights in place and set its bias so that it computes norm(conv(x)) (eval mode)."""
    inverse_std = torch.rsqrt(norm.running_var + norm.eps)
    gain = inverse_std if norm.weight is None else norm.weight * inverse_std
    shift = torch.zeros_like(norm.running_mean) if norm.bias is None else norm.bias
    bias = torch.zeros_like(norm.running_mean) if conv.bias is None else conv.bias
    conv.weight.mul_(gain.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - norm.running_mean) * gain + shift, requires_grad=False)


def _fold(model: nn.Module) -> fx.GraphModule:
    """`model` (a copy in eval mode) traced, each Conv2d+BatchNorm2d pair folded into the Conv2d."""
    traced = fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    calls = Counter(node.target for node in traced.graph.nodes if node.op == "call_module")
    for node in list(traced.graph.nodes):
        source = node.args[0] if node.op == "call_module" and node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        conv, norm = modules[source.target], modules[node.target]
        pair = type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.track_running_stats
        if pair and calls[source.target] == calls[node.target] == 1:  # a module called twice is left alone
            _absorb(conv, norm)
            node.replace_all_uses_with(source)
            traced.graph.erase_node(node)
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


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
        with torch.no_grad():
            return _fold(copied).eval()
    except Exception as error:  # any tracing failure means: run the model as it is
        log.info("batch norms left unfolded (%s cannot be traced: %s)", type(plain).__name__, error)
        return model
