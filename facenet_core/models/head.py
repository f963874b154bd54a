"""The seed's embedding head: a bias-free linear layer whose output is L2-normalised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingHead(nn.Linear):
    """Linear(features, embedding_dimension, bias=False) followed by L2 normalisation.

    Subclassing Linear keeps the parameter name `<head>.weight`, the name the seed's checkpoints use,
    so seed weights load without renaming. Normalisation runs in float32 so that bf16/fp16 autocast
    does not round the unit vectors the triplet distances are measured on.
    """

    def __init__(self, in_features: int, embedding_dimension: int) -> None:
        super().__init__(in_features, embedding_dimension, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().forward(features).float(), p=2, dim=1)
