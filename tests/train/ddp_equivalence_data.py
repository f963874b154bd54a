"""Shared by the DDP equivalence test and its torchrun worker: model, data and step options."""

import dataclasses

import torch
from torch import nn

from facenet_core.models import EmbeddingHead
from facenet_core.train.step import StepOptions

BATCH = 8
STEPS = 3
STEP_OPTIONS = StepOptions(margin=0.1, semihard=False, amp_dtype=None, channels_last=False, grad_clip_norm=None)
MINED_MARGIN = 0.5
# Labelled batches of 8 images; rank 0 gets identities 0 and 1, rank 1 identities 2 and 3, where 3 has
# one image: the ranks' divisors differ, so a per-rank normalisation would show.
PK_LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])


def tiny_model() -> nn.Module:
    """BatchNorm-free, so per-rank batch statistics cannot make the ranks differ."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), EmbeddingHead(6, 4)
    )


def global_batches() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [tuple(torch.randn(BATCH, 3, 8, 8, generator=generator) for _ in range(3)) for _ in range(STEPS)]


def rank_rows(batch, rank: int, world_size: int):
    """Rows [r*B/W, (r+1)*B/W) of a global batch, as the triplet loader slices it."""
    share = BATCH // world_size
    return tuple(part[rank * share : (rank + 1) * share] for part in batch)


def mined_options(mining: str) -> StepOptions:
    return dataclasses.replace(STEP_OPTIONS, mining=mining, margin=MINED_MARGIN)


def labelled_global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(2)
    return [(torch.randn(len(PK_LABELS), 3, 8, 8, generator=generator), PK_LABELS) for _ in range(STEPS)]
