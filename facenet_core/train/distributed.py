"""The process group of a torchrun launch (or a single process) and the globally normalised loss."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from facenet_core.devices import resolve_device
from facenet_core.train.loss import LossTerms


@dataclass(frozen=True)
class DistContext:
    """Rank, world size and device of this process."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_from_env(requested_device: str) -> DistContext:
    """Join the process group torchrun describes in the environment (NCCL on CUDA, gloo on CPU).

    Without torchrun's variables this is a single process and no group is created.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def global_loss(terms: LossTerms, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to backpropagate and the all-reduced divisor (the seed: kept triplets; the miners:
    valid anchors, valid pairs or triplets with a positive hinge).

    Every rank divides its hinge sum by the divisor of the whole global batch and multiplies by the
    world size, which DDP's gradient averaging divides out again: W ranks then compute the gradient
    of (sum of all hinges) / (all divisors), exactly as one process whose batch is the ranks' batches
    side by side, each mined on its own rank.
    """
    divisor = terms.divisor.detach().to(torch.float32)
    if world_size > 1:
        dist.all_reduce(divisor)
    return terms.hinge_sum * world_size / divisor.clamp(min=1), divisor


def all_reduce_sum(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Sum of `tensor` over the ranks (a copy; the input is untouched)."""
    total = tensor.detach().clone()
    if world_size > 1:
        dist.all_reduce(total)
    return total
