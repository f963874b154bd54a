"""One optimisation step (fused forward, on-device selection or mining, AMP) and device-side metric sums."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from facenet_core.train.distributed import all_reduce_sum, global_loss
from facenet_core.train.loss import LossTerms, split_embeddings, triplet_terms
from facenet_core.train.mining import mine

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
# What train_step returns, in order, for the global batch: the mean loss, then sums.
STEP_STATS = ("loss", "active", "considered", "pos_dist_sum", "neg_dist_sum", "images")


@dataclass(frozen=True)
class StepOptions:
    """What a step needs besides the model, optimiser and batch."""

    margin: float
    semihard: bool
    amp_dtype: torch.dtype | None
    channels_last: bool
    grad_clip_norm: float | None
    world_size: int = 1
    mining: str = "seed"
    distance: str = "euclidean"


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


def labelled_images(batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and their labels of a PK batch (images, labels) or a triplet batch (anchors, positives,
    negatives, labels (B, 3)), whose images are concatenated anchors, positives, negatives."""
    if len(batch) == 2:
        return batch[0], batch[1]
    anchors, positives, negatives, labels = batch
    return torch.cat((anchors, positives, negatives)), labels.T.reshape(-1)


def _forward(model: nn.Module, images: torch.Tensor, options: StepOptions, device: torch.device) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    if options.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=options.amp_dtype or torch.float32, enabled=options.amp_dtype is not None):
        return model(images)


def batch_terms(
    model: nn.Module, batch: Sequence[torch.Tensor], options: StepOptions, device: torch.device
) -> tuple[LossTerms, int]:
    """One forward pass over the batch's images and the loss terms of options.mining; and the image count.

    seed: the seed's selection among the triplet batch's rows; batch_*: mining over every image of
    the batch by its label.
    """
    if options.mining == "seed":
        anchors, positives, negatives = batch[:3]
        embeddings = _forward(model, torch.cat((anchors, positives, negatives)), options, device)
        terms = triplet_terms(*split_embeddings(embeddings), options.margin, options.semihard, options.distance)
        return terms, 3 * len(anchors)
    images, labels = labelled_images(batch)
    embeddings = _forward(model, images, options, device)
    terms = mine(embeddings, labels.to(device, non_blocking=True), options.mining, options.margin, options.distance)
    return terms, len(images)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batch: Sequence[torch.Tensor],
    options: StepOptions,
    device: torch.device,
) -> torch.Tensor:
    """Forward the batch's images once, select or mine, backpropagate, step.

    Returns a detached float64 device tensor of STEP_STATS over the global batch (nothing is read on
    the host here). With the seed's selection active is the kept triplets and considered the triplets.
    """
    terms, images = batch_terms(model, batch, options, device)
    loss, divisor = global_loss(terms, options.world_size)
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
    parts = (terms.hinge_sum, terms.active, terms.considered, terms.pos_dist_sum, terms.neg_dist_sum)
    totals = all_reduce_sum(torch.stack([part.detach().to(torch.float64) for part in parts]), options.world_size)
    mean_loss = totals[:1] / divisor.to(torch.float64).clamp(min=1)
    return torch.cat((mean_loss, totals[1:], torch.full_like(mean_loss, float(images * options.world_size))))


class MetricSums:
    """Sums of STEP_STATS and the step count kept on the device; `read` is the only host sync."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(STEP_STATS) + 1, device=device, dtype=torch.float64)
        self.one = torch.ones(1, device=device, dtype=torch.float64)

    def add(self, stats: torch.Tensor) -> None:
        self.sums += torch.cat((stats.to(torch.float64), self.one))

    def read(self) -> dict[str, float]:
        """Totals since the last read (then reset): the mean loss, the other STEP_STATS summed, steps."""
        values = dict(zip((*STEP_STATS, "steps"), self.sums.tolist(), strict=True))
        self.sums.zero_()
        values["loss"] /= max(values["steps"], 1)
        return values


def step_metrics(sums: dict[str, float], seconds: float, mining: str) -> dict[str, float]:
    """What MetricSums.read gave, as reported: loss, active_fraction (active / considered), the mean
    positive and negative distances of the considered terms, images_per_second; with the seed's
    selection also kept_triplets and kept_fraction (the same fraction, under the seed's names)."""
    considered = max(sums["considered"], 1)
    metrics = {
        "loss": sums["loss"],
        "active_fraction": sums["active"] / considered,
        "positive_distance": sums["pos_dist_sum"] / considered,
        "negative_distance": sums["neg_dist_sum"] / considered,
        "images_per_second": sums["images"] / max(seconds, 1e-9),
    }
    if mining == "seed":
        metrics.update(kept_triplets=sums["active"], kept_fraction=metrics["active_fraction"])
    return metrics
