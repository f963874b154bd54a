"""One optimisation step (fused forward, on-device selection, AMP) and device-side metric sums."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from facenet_core.train.distributed import all_reduce_sum, global_loss
from facenet_core.train.loss import split_embeddings, triplet_terms

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


@dataclass(frozen=True)
class StepOptions:
    """What a step needs besides the model, optimiser and batch."""

    margin: float
    semihard: bool
    amp_dtype: torch.dtype | None
    channels_last: bool
    grad_clip_norm: float | None
    world_size: int = 1


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """`auto`: bf16 on GPUs that support it, fp16 on older GPUs, off on the CPU."""
    if amp != "auto":
        return AMP_DTYPES[amp]
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_scaler(amp_dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batch: Sequence[torch.Tensor],
    options: StepOptions,
    device: torch.device,
) -> torch.Tensor:
    """Forward anchors+positives+negatives once, select, backpropagate, step.

    Returns a detached device tensor [loss, kept, triplets] of the global batch (nothing is read
    on the host here).
    """
    anchors, positives, negatives = batch[:3]
    images = torch.cat((anchors, positives, negatives)).to(device, non_blocking=True)
    if options.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=options.amp_dtype or torch.float32, enabled=options.amp_dtype is not None):
        embeddings = model(images)
    terms = triplet_terms(*split_embeddings(embeddings), options.margin, options.semihard)
    loss, kept = global_loss(terms, options.world_size)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if options.grad_clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    hinge_total = all_reduce_sum(terms.hinge_sum, options.world_size)
    triplets = torch.full_like(kept, float(len(anchors) * options.world_size))
    return torch.stack((hinge_total / kept.clamp(min=1), kept, triplets))


class MetricSums:
    """Sums of [loss, kept, triplets, steps] kept on the device; `read` is the only host sync."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(4, device=device, dtype=torch.float64)
        self.one = torch.ones(1, device=device, dtype=torch.float64)

    def add(self, stats: torch.Tensor) -> None:
        self.sums += torch.cat((stats.to(torch.float64), self.one))

    def read(self) -> dict[str, float]:
        """Totals since the last read (then reset): mean loss, kept and triplets counts, steps."""
        loss, kept, triplets, steps = self.sums.tolist()
        self.sums.zero_()
        return {"loss": loss / max(steps, 1), "kept_triplets": kept, "triplets": triplets, "steps": steps}
