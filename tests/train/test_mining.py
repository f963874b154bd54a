"""Online miners against plain loops over anchors, positives and negatives: terms, losses, gradients."""

import pytest
import torch

from facenet_core.train.mining import MINERS, SQRT_CLAMP, batch_all, batch_hard, label_masks, mine, pairwise_distances

DISTANCES = ("euclidean", "squared_euclidean")


def _distance(x, y, distance):
    squared = ((x - y) ** 2).sum()
    return squared if distance == "squared_euclidean" else torch.sqrt(torch.clamp(squared, min=SQRT_CLAMP))


def _first_min(indices, d):
    """The first index with the smallest distance (the batch order breaks ties)."""
    best = indices[0]
    for index in indices[1:]:
        if d[index].item() < d[best].item():
            best = index
    return best


def _first_max(indices, d):
    best = indices[0]
    for index in indices[1:]:
        if d[index].item() > d[best].item():
            best = index
    return best


def _loop_terms(embeddings, labels, mining, margin, distance):
    """The miner's definition as loops: (loss, active, considered, pos_dist_sum, neg_dist_sum)."""
    n = len(labels)
    labels = labels.tolist()
    rows = [[_distance(embeddings[i], embeddings[j], distance) for j in range(n)] for i in range(n)]
    hinges, active, considered, pos_sum, neg_sum = [], 0, 0, 0.0, 0.0
    for a in range(n):
        positives = [p for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [q for q in range(n) if labels[q] != labels[a]]
        if not positives or not negatives:
            continue
        d = rows[a]
        if mining == "batch_hard":
            chosen = [(_first_max(positives, d), _first_min(negatives, d))]
        elif mining == "batch_semihard":
            chosen = []
            for p in positives:
                semihard = [q for q in negatives if d[p].item() < d[q].item() < (d[p] + margin).item()]
                chosen.append((p, _first_min(semihard or negatives, d)))
        else:
            chosen = [(p, q) for p in positives for q in negatives]
        for p, q in chosen:
            hinge = torch.clamp(margin + d[p] - d[q], min=0.0)
            considered += 1
            pos_sum += d[p].item()
            neg_sum += d[q].item()
            if hinge > 0:
                active += 1
            if mining != "batch_all" or hinge > 0:
                hinges.append(hinge)
    loss = sum(hinges) / len(hinges) if hinges else embeddings.sum() * 0.0
    return loss, active, considered, pos_sum, neg_sum


def _check(embeddings, labels, mining, margin, distance, atol=1e-10):
    ours = embeddings.detach().clone().requires_grad_(True)
    theirs = embeddings.detach().clone().requires_grad_(True)
    terms = mine(ours, labels, mining, margin, distance)
    loss, active, considered, pos_sum, neg_sum = _loop_terms(theirs, labels, mining, margin, distance)
    assert int(terms.active) == active
    assert int(terms.considered) == considered
    assert int(terms.divisor) == (active if mining == "batch_all" else considered)
    assert float(terms.pos_dist_sum) == pytest.approx(pos_sum, abs=atol * max(considered, 1))
    assert float(terms.neg_dist_sum) == pytest.approx(neg_sum, abs=atol * max(considered, 1))
    torch.testing.assert_close(terms.loss().to(loss.dtype), loss, rtol=0, atol=atol)
    terms.loss().backward()
    loss.backward()
    grad = theirs.grad if theirs.grad is not None else torch.zeros_like(theirs)
    torch.testing.assert_close(ours.grad, grad, rtol=0, atol=atol)
    return terms


def _random(n, labels, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=1)
    return embeddings, torch.tensor(labels)


def _grid(n, labels, seed=0):
    """Points of {0,1,2}^3 drawn with repeats: equal distances everywhere and duplicate embeddings."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 3, (n, 3), generator=generator).to(torch.float64), torch.tensor(labels)


LABELS = [0, 1, 2, 0, 1, 2, 3, 0, 1, 3, 2, 4]  # label 4: a single image, an anchor without a positive


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("mining", list(MINERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_random_embeddings_match_the_loop(mining, distance, seed):
    embeddings, labels = _random(len(LABELS), LABELS, seed=seed)
    terms = _check(embeddings, labels, mining, margin=0.5 if distance == "euclidean" else 1.0, distance=distance)
    assert 0 < int(terms.active) <= int(terms.considered)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("mining", list(MINERS))
@pytest.mark.parametrize(("seed", "margin"), [(0, 1.0), (1, 0.5), (2, 2.0), (3, 0.0)])
def test_ties_and_duplicate_embeddings_match_the_loop(mining, distance, seed, margin):
    embeddings, labels = _grid(16, [i % 5 for i in range(15)] + [7], seed=seed)
    assert len(torch.unique(embeddings, dim=0)) < len(embeddings)  # duplicates
    _check(embeddings, labels, mining, margin, distance)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("mining", list(MINERS))
def test_float32_embeddings_match_the_loop_in_float64(mining, distance):
    embeddings, labels = _random(len(LABELS), LABELS, seed=3)
    terms = mine(embeddings.float(), labels, mining, 0.5, distance)
    loss = _loop_terms(embeddings, labels, mining, 0.5, distance)[0]
    assert terms.hinge_sum.dtype == torch.float32
    assert float(terms.loss()) == pytest.approx(float(loss), abs=1e-5)


@pytest.mark.parametrize("mining", list(MINERS))
@pytest.mark.parametrize("labels", [[3] * 6, list(range(6))], ids=["all-one-label", "all-distinct"])
def test_no_valid_triplet_gives_zero_loss_and_zero_gradient(mining, labels):
    embeddings, labels = _random(6, labels)
    embeddings.requires_grad_(True)
    terms = mine(embeddings, labels, mining, 0.5, "euclidean")
    terms.loss().backward()
    assert int(terms.considered) == 0 and int(terms.active) == 0
    assert float(terms.loss().detach()) == 0.0
    assert torch.isfinite(embeddings.grad).all() and not embeddings.grad.any()


@pytest.mark.parametrize("distance", DISTANCES)
def test_identical_embeddings_have_finite_gradients(distance):
    embeddings = torch.ones(4, 3, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    terms = mine(embeddings, labels, "batch_hard", 0.2, distance)
    terms.loss().backward()
    assert float(terms.loss().detach()) == pytest.approx(0.2, abs=1e-5)
    assert torch.isfinite(embeddings.grad).all()


def test_distances_are_euclidean_or_squared_and_float32_under_autocast():
    embeddings = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 6.0]], dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        euclidean = pairwise_distances(embeddings, "euclidean")
        squared = pairwise_distances(embeddings, "squared_euclidean")
    assert euclidean.dtype == squared.dtype == torch.float32
    torch.testing.assert_close(euclidean[0, 1:], torch.tensor([5.0, 6.0]))
    torch.testing.assert_close(squared[1, 2], torch.tensor(13.0))
    with pytest.raises(ValueError, match="triplet_distance"):
        pairwise_distances(embeddings, "cosine")


def test_batch_hard_on_known_distances():
    # Anchor 0: positives at 1.0 and 3.0 (hardest 3.0), negatives at 2.0 and 4.0 (hardest 2.0).
    embeddings = torch.tensor([[0.0], [1.0], [3.0], [2.0], [4.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    distances = pairwise_distances(embeddings, "euclidean")
    terms = batch_hard(distances, labels, margin=0.5)
    # Per anchor (hardest d_ap, hardest d_an): 0 (3, 2), 1 (2, 1), 2 (3, 1), 3 (2, 1), 4 (2, 1).
    expected = [0.5 + 3 - 2, 0.5 + 2 - 1, 0.5 + 3 - 1, 0.5 + 2 - 1, 0.5 + 2 - 1]
    assert int(terms.considered) == 5 and int(terms.active) == 5
    torch.testing.assert_close(terms.loss(), torch.tensor(sum(expected) / 5), atol=1e-5, rtol=0)


def test_batch_all_averages_over_the_positive_hinges_only():
    embeddings = torch.tensor([[0.0], [1.0], [5.0]])
    labels = torch.tensor([0, 0, 1])
    terms = batch_all(pairwise_distances(embeddings, "euclidean"), labels, margin=0.5)
    # Triplets (0,1,2): 0.5+1-5 < 0; (1,0,2): 0.5+1-4 < 0. None active.
    assert (int(terms.considered), int(terms.active), float(terms.loss())) == (2, 0, 0.0)
    close = torch.tensor([[0.0], [1.0], [1.2]])
    terms = batch_all(pairwise_distances(close, "euclidean"), labels, margin=0.5)
    # (0,1,2): 0.5+1-1.2 = 0.3; (1,0,2): 0.5+1-0.2 = 1.3
    assert int(terms.active) == 2
    torch.testing.assert_close(terms.loss(), torch.tensor(0.8), atol=1e-5, rtol=0)


def test_label_masks_exclude_the_image_itself():
    positive, negative = label_masks(torch.tensor([0, 0, 1]))
    assert positive.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert negative.tolist() == [[False, False, True], [False, False, True], [True, True, False]]


def test_unknown_mining_is_refused():
    with pytest.raises(ValueError, match="mining"):
        mine(torch.zeros(2, 2), torch.tensor([0, 1]), "seed", 0.2, "euclidean")
