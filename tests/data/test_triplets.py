"""Per-epoch triplets: the seed's sampling rules, their distribution, determinism and files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy.stats import chisquare

from facenet_core.data.triplets import generate_triplets, load_triplets, save_triplets, sidecar_path

P_MIN = 1e-4  # fixed seeds make these deterministic; the bound only guards against a biased sampler


def _labels(counts) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int32)


def _generate(labels, seed=0, epoch=0, iterations=50, batch_size=40, k=4):
    return generate_triplets(
        labels,
        seed=seed,
        epoch=epoch,
        iterations_per_epoch=iterations,
        batch_size=batch_size,
        num_human_identities_per_batch=k,
    )


@pytest.fixture
def skewed_labels() -> np.ndarray:
    counts = np.maximum(1, np.random.default_rng(7).zipf(1.7, size=200).clip(max=60))
    return _labels(counts)


def test_shape_dtype_and_class_membership(skewed_labels):
    triplets = _generate(skewed_labels)
    assert triplets.shape == (50 * 40, 3) and triplets.dtype == np.int32
    a, p, n = (skewed_labels[triplets[:, i]] for i in range(3))
    assert (a == p).all() and (a != n).all()
    assert (triplets[:, 0] != triplets[:, 1]).all()
    counts = np.bincount(skewed_labels)
    assert (counts[a] >= 2).all()


def test_each_block_uses_at_most_k_identities(skewed_labels):
    triplets = _generate(skewed_labels, k=5)
    blocks = skewed_labels[triplets].reshape(50, 40 * 3)
    assert max(len(np.unique(block)) for block in blocks) <= 5


def test_unsorted_labels_give_rows_of_the_right_class(skewed_labels):
    order = np.random.default_rng(1).permutation(skewed_labels.size)
    shuffled = skewed_labels[order]
    triplets = _generate(shuffled)
    a, p, n = (shuffled[triplets[:, i]] for i in range(3))
    assert (a == p).all() and (a != n).all() and (triplets[:, 0] != triplets[:, 1]).all()


def test_identity_sampling_is_uniform():
    labels = _labels([3] * 12)
    triplets = _generate(labels, iterations=600, batch_size=60, k=3)
    blocks = labels[triplets].reshape(600, -1)
    appearances = np.zeros(12)
    for block in blocks:
        appearances[np.unique(block)] += 1
    assert appearances.sum() == 600 * 3
    assert chisquare(appearances).pvalue > P_MIN


def test_positive_negative_and_images_are_uniform():
    counts = [1, 2, 3, 4, 5, 6]  # k = 6: every block holds every identity
    labels = _labels(counts)
    triplets = _generate(labels, iterations=40, batch_size=500, k=6)
    pos = labels[triplets[:, 0]]
    assert 0 not in pos  # the single-image identity is only ever a negative
    assert chisquare(np.bincount(pos, minlength=6)[1:]).pvalue > P_MIN
    for c in range(1, 6):
        negatives = labels[triplets[pos == c, 2]]
        others = [o for o in range(6) if o != c]
        assert chisquare(np.bincount(negatives, minlength=6)[others]).pvalue > P_MIN
    start = np.cumsum([0, *counts])
    six = triplets[pos == 5]
    pair_ids = (six[:, 0] - start[5]) * 6 + (six[:, 1] - start[5])
    pair_counts = np.bincount(pair_ids, minlength=36).reshape(6, 6)
    assert np.diag(pair_counts).sum() == 0
    assert chisquare(pair_counts[~np.eye(6, dtype=bool)]).pvalue > P_MIN
    negative_images = triplets[labels[triplets[:, 2]] == 5, 2] - start[5]
    assert chisquare(np.bincount(negative_images, minlength=6)).pvalue > P_MIN


def test_blocks_without_a_pair_are_resampled():
    labels = _labels([1] * 30 + [2])  # only identity 30 can be a positive
    triplets = _generate(labels, iterations=20, batch_size=8, k=3)
    assert (labels[triplets[:, 0]] == 30).all()


def test_same_seed_and_epoch_give_the_same_bytes(skewed_labels):
    first = _generate(skewed_labels, seed=11, epoch=4)
    assert first.tobytes() == _generate(skewed_labels, seed=11, epoch=4).tobytes()
    assert not np.array_equal(first, _generate(skewed_labels, seed=11, epoch=5))
    assert not np.array_equal(first, _generate(skewed_labels, seed=12, epoch=4))


def test_stage_version_1_bytes_are_kept(skewed_labels):
    """The triplets of STAGE_VERSION 1 (sha256 of the first implementation's output): cached epochs stay valid."""
    order = np.random.default_rng(3).permutation(skewed_labels.size)
    for labels, digest in (
        (skewed_labels, "53008e5ffcaa7a959e2c1dbb6c5808571640c06624f10049364bf31b4436399e"),
        (skewed_labels[order], "adab80131a6dc1da672d2d37d23eafd0507a1809dea22fa6d09029a8e3dd3699"),
    ):
        triplets = _generate(labels, seed=11, epoch=4)
        assert hashlib.sha256(triplets.tobytes()).hexdigest() == digest


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="num_human_identities_per_batch=5 exceeds the 4"):
        _generate(_labels([2, 2, 2, 2]), k=5)
    with pytest.raises(ValueError, match="no identity has two images"):
        _generate(_labels([1, 1, 1, 1]), k=2)
    with pytest.raises(ValueError, match="batch_size"):
        _generate(_labels([2, 2]), k=2, batch_size=0)


def test_save_and_load_check_the_manifest(tmp_path, skewed_labels):
    triplets = _generate(skewed_labels)
    path = save_triplets(tmp_path / "epoch_0.npy", triplets, {"manifest_fingerprint": "abc", "seed": 0, "epoch": 0})
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["manifest_fingerprint"] == "abc" and meta["num_triplets"] == len(triplets)
    assert np.array_equal(load_triplets(path, "abc"), triplets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0.json", "epoch_0.npy"]
    with pytest.raises(ValueError, match="regenerate them for this manifest"):
        load_triplets(path, "other")
    sidecar_path(path).unlink()
    with pytest.raises(ValueError, match="no epoch_0.json sidecar"):
        load_triplets(path, "abc")
    with pytest.raises(ValueError, match="manifest_fingerprint"):
        save_triplets(tmp_path / "x.npy", triplets, {"seed": 0})
