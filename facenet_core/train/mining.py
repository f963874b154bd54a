"""Online triplet mining over a batch of labelled embeddings, computed on the device.

Every miner takes the batch's pairwise distance matrix and labels and returns LossTerms (sums and
counts as device tensors). Selection is masks, sorts and reductions only: no `.item()`, no boolean
indexing, so shapes never depend on the data and nothing waits on the host.

- batch_hard: per anchor, its farthest positive and nearest negative (Hermans et al., 2017).
- batch_semihard: per anchor-positive pair, the nearest negative farther than the positive but within
  the margin, else the nearest negative (FaceNet, Schroff et al., 2015).
- batch_all: every anchor-positive-negative triplet, averaged over those with a positive hinge.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from facenet_core.train.loss import LossTerms

# Squared distances are clamped here before the square root: the Euclidean distance of identical
# embeddings is 1e-6 (the order of the seed's PairwiseDistance eps) with a zero gradient, not NaN.
SQRT_CLAMP = 1e-12

Miner = Callable[[torch.Tensor, torch.Tensor, float], LossTerms]


def pairwise_distances(embeddings: torch.Tensor, distance: str) -> torch.Tensor:
    """(N, N) Euclidean or squared Euclidean distances, in float32 (float64 stays float64) even under autocast.

    The diagonal is not meaningful (no miner reads a distance of an image to itself).
    """
    dtype = torch.promote_types(embeddings.dtype, torch.float32)
    with torch.autocast(embeddings.device.type, enabled=False):
        x = embeddings.to(dtype)
        norms = x.pow(2).sum(dim=1)
        squared = norms[:, None] + norms[None, :] - 2.0 * (x @ x.T)
        if distance == "squared_euclidean":
            return squared.clamp(min=0.0)
        if distance == "euclidean":
            return squared.clamp(min=SQRT_CLAMP).sqrt()
    raise ValueError(f"triplet_distance must be euclidean or squared_euclidean, not {distance!r}")


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) boolean (N, N) masks: same label and not itself; other label."""
    same = labels[:, None] == labels[None, :]
    itself = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~itself, ~same


def _negatives_by_distance(distances: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor, its distances sorted ascending with the non-negatives last (as +inf), and the order.

    The sort is stable, so equal distances keep the batch order (the first image wins a tie).
    """
    masked = distances.detach().masked_fill(~negative, float("inf"))
    sorted_masked, order = masked.sort(dim=1, stable=True)
    return sorted_masked, order


def _mean_hinge_terms(
    positive_distance: torch.Tensor, negative_distance: torch.Tensor, valid: torch.Tensor, margin: float
) -> LossTerms:
    """Terms of the mean hinge over the `valid` (anchor, positive, negative) choices, one per entry."""
    zero = positive_distance.new_zeros(())
    hinge = torch.where(valid, torch.clamp(margin + positive_distance - negative_distance, min=0.0), zero)
    count = valid.sum()
    return LossTerms(
        hinge_sum=hinge.sum(),
        divisor=count,
        active=(hinge.detach() > 0).sum(),
        considered=count,
        pos_dist_sum=torch.where(valid, positive_distance.detach(), zero).sum(),
        neg_dist_sum=torch.where(valid, negative_distance.detach(), zero).sum(),
    )


def batch_hard(distances: torch.Tensor, labels: torch.Tensor, margin: float) -> LossTerms:
    """Per anchor the hardest positive (largest distance) and hardest negative (smallest distance).

    Anchors without a positive or without a negative are left out; loss = mean hinge over the others.
    """
    positive, negative = label_masks(labels)
    hardest_positive = distances.masked_fill(~positive, float("-inf")).max(dim=1).values
    hardest_negative = distances.masked_fill(~negative, float("inf")).min(dim=1).values
    valid = positive.any(dim=1) & negative.any(dim=1)
    return _mean_hinge_terms(hardest_positive, hardest_negative, valid, margin)


def batch_semihard(distances: torch.Tensor, labels: torch.Tensor, margin: float) -> LossTerms:
    """Every anchor-positive pair with the nearest semi-hard negative (d_ap < d_an < d_ap + margin);
    a pair without one takes the anchor's hardest negative (smallest d_an, whatever its hinge).

    Pairs whose anchor has no negative are left out; loss = mean hinge over the others.
    """
    positive, negative = label_masks(labels)
    sorted_masked, order = _negatives_by_distance(distances, negative)
    # The first negative farther than d_ap. The image itself is never a negative, so every row ends
    # in at least one +inf and the index stays inside the row.
    farther = torch.searchsorted(sorted_masked, distances.detach().contiguous(), right=True)
    candidate = order.gather(1, farther)
    is_semihard = sorted_masked.gather(1, farther) < distances.detach() + margin
    chosen = torch.where(is_semihard, candidate, order[:, :1])
    negative_distance = distances.gather(1, chosen)
    valid = positive & negative.any(dim=1, keepdim=True)
    return _mean_hinge_terms(distances, negative_distance, valid, margin)


def batch_all(distances: torch.Tensor, labels: torch.Tensor, margin: float) -> LossTerms:
    """Every valid triplet (a, p same label, a != p; n another label); loss = sum of the positive
    hinges / their number (0 when none).

    Without building the (N, N, N) cube: for a pair (a, p) the negatives with a positive hinge are
    those with d_an < d_ap + margin, a prefix of a's sorted negatives of length c; their hinge sum is
    c * (margin + d_ap) - (sum of that prefix), read from a cumulative sum. O(N^2 log N) time, O(N^2)
    memory, and the same gradient as the sum of the individual hinges.
    """
    positive, negative = label_masks(labels)
    sorted_masked, order = _negatives_by_distance(distances, negative)
    # Non-negatives sort last and no prefix of length c reaches them.
    prefix_sums = torch.nn.functional.pad(distances.gather(1, order).cumsum(dim=1), (1, 0))
    thresholds = (distances.detach() + margin).contiguous()
    active_counts = torch.searchsorted(sorted_masked, thresholds, right=False)
    hinge = active_counts * (margin + distances) - prefix_sums.gather(1, active_counts)
    positive_float = positive.to(distances.dtype)
    negatives_per_anchor = negative.sum(dim=1, keepdim=True)
    active = (active_counts * positive).sum()
    negative_distance_sums = (distances.detach() * negative).sum(dim=1)
    return LossTerms(
        hinge_sum=(hinge * positive_float).sum(),
        divisor=active,
        active=active,
        considered=(negatives_per_anchor * positive).sum(),
        pos_dist_sum=(distances.detach() * positive_float * negatives_per_anchor).sum(),
        neg_dist_sum=(positive.sum(dim=1) * negative_distance_sums).sum(),
    )


MINERS: dict[str, Miner] = {"batch_hard": batch_hard, "batch_semihard": batch_semihard, "batch_all": batch_all}


def mine(embeddings: torch.Tensor, labels: torch.Tensor, mining: str, margin: float, distance: str) -> LossTerms:
    """The terms of `mining` (batch_hard, batch_semihard or batch_all) over one batch of labelled embeddings."""
    if mining not in MINERS:
        raise ValueError(f"mining must be one of {', '.join(MINERS)}, not {mining!r}")
    return MINERS[mining](pairwise_distances(embeddings, distance), labels, margin)
