"""Triplet loss with the seed's hard / semi-hard selection, computed on the device.

The seed moved the distances to the host to pick triplets (a sync per step) and averaged the hinge
over the picked ones. Here selection is a mask: the loss is the masked hinge sum divided by
max(kept, 1), so zero kept triplets gives 0 instead of NaN and nothing waits on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# torch.nn.PairwiseDistance's default, which the seed used for its Euclidean distances.
PAIRWISE_EPS = 1e-6


@dataclass
class TripletTerms:
    """Per-batch sums, kept as device tensors so that logging never forces a sync."""

    hinge_sum: torch.Tensor
    kept: torch.Tensor
    pos_dist: torch.Tensor
    neg_dist: torch.Tensor

    def loss(self) -> torch.Tensor:
        """Mean hinge over the kept triplets of this batch alone (single-process training)."""
        return self.hinge_sum / self.kept.clamp(min=1)


def split_embeddings(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors, positives, negatives from one forward pass over their concatenation."""
    return embeddings.chunk(3, dim=0)


def selection_mask(pos_dist: torch.Tensor, neg_dist: torch.Tensor, margin: float, semihard: bool) -> torch.Tensor:
    """Hard: d_an - d_ap < margin. Semi-hard additionally requires d_ap < d_an."""
    mask = (neg_dist - pos_dist) < margin
    if semihard:
        mask = mask & (pos_dist < neg_dist)
    return mask


def triplet_terms(
    anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float, semihard: bool
) -> TripletTerms:
    """Euclidean (not squared) distances, the selection mask and the masked hinge sum."""
    pos_dist = F.pairwise_distance(anchors.float(), positives.float(), p=2, eps=PAIRWISE_EPS)
    neg_dist = F.pairwise_distance(anchors.float(), negatives.float(), p=2, eps=PAIRWISE_EPS)
    mask = selection_mask(pos_dist.detach(), neg_dist.detach(), margin, semihard)
    hinge = torch.clamp(margin + pos_dist - neg_dist, min=0.0)
    return TripletTerms(
        hinge_sum=(hinge * mask).sum(),
        kept=mask.sum(),
        pos_dist=pos_dist.detach(),
        neg_dist=neg_dist.detach(),
    )
