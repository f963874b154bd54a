"""Triplet loss terms, and the seed's hard / semi-hard selection among offline triplets, on the device.

The seed moved the distances to the host to pick triplets (a sync per step) and averaged the hinge
over the picked ones. Here selection is a mask: the loss is the masked hinge sum divided by
max(kept, 1), so zero kept triplets gives 0 instead of NaN and nothing waits on the host.
LossTerms is also what the online miners (mining.py) return, so a step treats every mining alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# torch.nn.PairwiseDistance's default, which the seed used for its Euclidean distances.
PAIRWISE_EPS = 1e-6


@dataclass
class LossTerms:
    """One batch's loss terms as device tensors, so that logging never forces a sync.

    loss = hinge_sum / divisor; active counts the terms with a positive hinge among the `considered`
    ones (triplets, anchors or pairs, as the mining defines them), whose positive and negative
    distances sum to pos_dist_sum and neg_dist_sum.
    """

    hinge_sum: torch.Tensor
    divisor: torch.Tensor
    active: torch.Tensor
    considered: torch.Tensor
    pos_dist_sum: torch.Tensor
    neg_dist_sum: torch.Tensor

    def loss(self) -> torch.Tensor:
        """Mean hinge of this batch alone (single-process training); 0 when the divisor is 0."""
        return self.hinge_sum / self.divisor.clamp(min=1)


@dataclass
class TripletTerms(LossTerms):
    """The seed's selection: divisor = active = the kept triplets, considered = the batch's triplets;
    the per-triplet distances too."""

    pos_dist: torch.Tensor
    neg_dist: torch.Tensor

    @property
    def kept(self) -> torch.Tensor:
        return self.divisor


def split_embeddings(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors, positives, negatives from one forward pass over their concatenation."""
    return embeddings.chunk(3, dim=0)


def selection_mask(pos_dist: torch.Tensor, neg_dist: torch.Tensor, margin: float, semihard: bool) -> torch.Tensor:
    """Hard: d_an - d_ap < margin. Semi-hard additionally requires d_ap < d_an."""
    mask = (neg_dist - pos_dist) < margin
    if semihard:
        mask = mask & (pos_dist < neg_dist)
    return mask


def paired_distances(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Row-wise distances in float32: Euclidean exactly as the seed (PairwiseDistance), or squared."""
    if distance == "euclidean":
        return F.pairwise_distance(x.float(), y.float(), p=2, eps=PAIRWISE_EPS)
    if distance == "squared_euclidean":
        return (x.float() - y.float()).pow(2).sum(dim=1)
    raise ValueError(f"triplet_distance must be euclidean or squared_euclidean, not {distance!r}")


def triplet_terms(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    margin: float,
    semihard: bool,
    distance: str = "euclidean",
) -> TripletTerms:
    """Distances (the seed's: Euclidean, not squared), the selection mask and the masked hinge sum."""
    pos_dist = paired_distances(anchors, positives, distance)
    neg_dist = paired_distances(anchors, negatives, distance)
    mask = selection_mask(pos_dist.detach(), neg_dist.detach(), margin, semihard)
    hinge = torch.clamp(margin + pos_dist - neg_dist, min=0.0)
    kept = mask.sum()
    return TripletTerms(
        hinge_sum=(hinge * mask).sum(),
        divisor=kept,
        active=kept,
        considered=torch.full_like(kept, len(anchors)),
        pos_dist_sum=pos_dist.detach().sum(),
        neg_dist_sum=neg_dist.detach().sum(),
        pos_dist=pos_dist.detach(),
        neg_dist=neg_dist.detach(),
    )
