"""Triplet selection and loss: the seed's definitions, computed with masks on the device."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facenet_core.train.loss import selection_mask, split_embeddings, triplet_terms


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def _seed_reference(anchor, positive, negative, margin, semihard):
    """The seed's selection on the host and TripletLoss over the selected rows."""
    pdist = torch.nn.PairwiseDistance(p=2)
    pos, neg = pdist(anchor, positive), pdist(anchor, negative)
    first = (neg - pos < margin).cpu().numpy().flatten()
    keep = np.logical_and(first, (pos < neg).cpu().numpy().flatten()) if semihard else first
    rows = np.where(keep == 1)
    a, p, n = anchor[rows], positive[rows], negative[rows]
    loss = torch.mean(torch.clamp(margin + pdist(a, p) - pdist(a, n), min=0.0))
    return loss, len(a)


def test_masks_on_known_distances():
    pos = torch.tensor([0.5, 0.5, 0.9, 0.1, 1.0])
    neg = torch.tensor([0.6, 0.4, 1.2, 0.9, 1.15])
    # d_an - d_ap = 0.1, -0.1, 0.3, 0.8, 0.15 ; margin 0.2
    assert selection_mask(pos, neg, 0.2, semihard=False).tolist() == [True, True, False, False, True]
    assert selection_mask(pos, neg, 0.2, semihard=True).tolist() == [True, False, False, False, True]


@pytest.mark.parametrize("semihard", [False, True])
def test_loss_matches_the_seed_selection_and_mean(semihard):
    a, p, n = _unit(64, 8, seed=1), _unit(64, 8, seed=2), _unit(64, 8, seed=3)
    terms = triplet_terms(a, p, n, margin=0.2, semihard=semihard)
    expected, kept = _seed_reference(a, p, n, 0.2, semihard)
    assert 0 < kept < 64
    assert int(terms.kept) == kept
    torch.testing.assert_close(terms.loss(), expected)


def test_distances_are_euclidean_not_squared():
    a = torch.tensor([[0.0, 0.0]])
    p = torch.tensor([[3.0, 4.0]])
    n = torch.tensor([[0.0, 6.0]])
    terms = triplet_terms(a, p, n, margin=2.0, semihard=False)
    torch.testing.assert_close(terms.pos_dist, torch.tensor([5.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(terms.neg_dist, torch.tensor([6.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(terms.loss(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_no_kept_triplet_gives_zero_loss_and_finite_zero_gradient():
    a = torch.tensor([[1.0, 0.0]], requires_grad=True)
    p = torch.tensor([[1.0, 0.0]])
    n = torch.tensor([[-1.0, 0.0]])
    terms = triplet_terms(a, p, n, margin=0.2, semihard=False)
    loss = terms.loss()
    loss.backward()
    assert int(terms.kept) == 0
    assert loss.item() == 0.0
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() == 0


def test_loss_gradient_matches_the_seed_on_kept_rows():
    a, p, n = _unit(32, 6, seed=4), _unit(32, 6, seed=5), _unit(32, 6, seed=6)
    ours = a.clone().requires_grad_(True)
    theirs = a.clone().requires_grad_(True)
    triplet_terms(ours, p, n, 0.2, False).loss().backward()
    _seed_reference(theirs, p, n, 0.2, False)[0].backward()
    torch.testing.assert_close(ours.grad, theirs.grad)


def test_split_embeddings_follows_the_concatenation_order():
    anchors, positives, negatives = torch.zeros(2, 3), torch.ones(2, 3), torch.full((2, 3), 2.0)
    a, p, n = split_embeddings(torch.cat((anchors, positives, negatives)))
    assert a.eq(0).all() and p.eq(1).all() and n.eq(2).all()
