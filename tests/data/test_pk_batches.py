"""Per-epoch P x K batches: their shape, sampling rules, determinism, files and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chisquare

from facenet_core.data.epoch_index import sidecar_path
from facenet_core.data.manifest import ManifestLabels
from facenet_core.data.pk_batches import (
    PKParams,
    draw_and_save,
    generate_pk_batches,
    load_pk_batches,
    save_pk_batches,
)
from facenet_core.data.triplets import save_triplets
from facenet_core.errors import UserError

P_MIN = 1e-4  # fixed seeds make these deterministic; the bound only guards against a biased sampler


def _labels(counts) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int32)


def _generate(labels, seed=0, epoch=0, iterations=50, p=4, k=3):
    return generate_pk_batches(
        labels, seed=seed, epoch=epoch, iterations_per_epoch=iterations, pk_identities=p, pk_images=k
    )


@pytest.fixture
def skewed_labels() -> np.ndarray:
    counts = np.maximum(1, np.random.default_rng(7).zipf(1.7, size=200).clip(max=60))
    return _labels(counts)


def test_rows_are_p_distinct_identities_of_k_contiguous_images(skewed_labels):
    batches = _generate(skewed_labels, iterations=60, p=5, k=4)
    assert batches.shape == (60, 20) and batches.dtype == np.int32
    labels = skewed_labels[batches].reshape(60, 5, 4)
    assert (labels == labels[:, :, :1]).all(), "the K images of an identity are side by side"
    assert all(np.unique(row).size == 5 for row in labels[:, :, 0]), "P distinct identities per batch"


def test_only_identities_with_two_images_are_drawn():
    counts = [1, 5, 1, 2, 1, 6, 3, 1]
    labels = _labels(counts)
    batches = _generate(labels, iterations=200, p=3, k=2)
    drawn = np.unique(labels[batches])
    assert set(drawn.tolist()) == {1, 3, 5, 6}


def test_k_distinct_images_where_the_identity_has_k_and_all_then_repeats_otherwise():
    counts = [2, 3, 4, 9]
    labels = _labels(counts)
    starts = np.cumsum([0, *counts])[:-1]
    batches = _generate(labels, iterations=300, p=4, k=4).reshape(300, 4, 4)
    for slots in batches.reshape(-1, 4):
        identity = labels[slots[0]]
        distinct = np.unique(slots).size
        if counts[identity] >= 4:
            assert distinct == 4
        else:
            assert distinct == counts[identity], "a small identity gives every one of its images"
            assert np.array_equal(slots[: counts[identity]], starts[identity] + np.arange(counts[identity]))
    large = batches.reshape(-1, 4)[labels[batches.reshape(-1, 4)[:, 0]] == 3]
    assert chisquare(np.bincount((large - starts[3]).ravel(), minlength=9)).pvalue > P_MIN


def test_identities_are_uniform_among_the_eligible():
    labels = _labels([3] * 12 + [1] * 4)
    batches = _generate(labels, iterations=600, p=3, k=2)
    appearances = np.bincount(labels[batches[:, ::2]].ravel(), minlength=16)
    assert appearances[12:].sum() == 0 and appearances.sum() == 600 * 3
    assert chisquare(appearances[:12]).pvalue > P_MIN


def test_same_seed_and_epoch_give_the_same_bytes(skewed_labels):
    first = _generate(skewed_labels, seed=11, epoch=4)
    assert first.tobytes() == _generate(skewed_labels, seed=11, epoch=4).tobytes()
    assert not np.array_equal(first, _generate(skewed_labels, seed=11, epoch=5))
    assert not np.array_equal(first, _generate(skewed_labels, seed=12, epoch=4))


def test_unsorted_labels_index_the_rows_they_came_from(skewed_labels):
    order = np.random.default_rng(3).permutation(skewed_labels.size)
    shuffled = skewed_labels[order]
    batches = _generate(shuffled, iterations=40, p=5, k=3)
    labels = shuffled[batches].reshape(40, 5, 3)
    assert (labels == labels[:, :, :1]).all()
    sorted_batches = _generate(skewed_labels, iterations=40, p=5, k=3)
    assert np.array_equal(shuffled[batches], skewed_labels[sorted_batches]), "the same identities as sorted"


def test_errors_name_the_field():
    with pytest.raises(UserError, match="pk_identities=4 exceeds the 3 identities with at least two images"):
        _generate(_labels([2, 2, 5, 1, 1]), p=4)
    for field in ("iterations_per_epoch", "pk_identities", "pk_images"):
        values = {"iterations_per_epoch": 2, "pk_identities": 2, "pk_images": 2, field: 0}
        with pytest.raises(ValueError, match=f"{field} must be at least 1"):
            generate_pk_batches(_labels([2, 2]), seed=0, epoch=0, **values)


def test_draw_save_and_load_check_the_manifest_and_the_shape(tmp_path, skewed_labels):
    params = PKParams(seed=2, iterations_per_epoch=7, pk_identities=4, pk_images=3)
    path = tmp_path / "epoch_1.npy"
    assert draw_and_save(ManifestLabels("abc", skewed_labels), 1, params, path) == 7
    meta = json.loads(sidecar_path(path).read_text())
    assert meta == {
        "manifest_fingerprint": "abc",
        "epoch": 1,
        "seed": 2,
        "iterations_per_epoch": 7,
        "pk_identities": 4,
        "pk_images": 3,
        "format": "facenet-pk-batches-1",
        "num_batches": 7,
    }
    batches = load_pk_batches(path, "abc", pk_identities=4, pk_images=3)
    assert np.array_equal(batches, _generate(skewed_labels, seed=2, epoch=1, iterations=7, p=4, k=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.json", "epoch_1.npy"]
    with pytest.raises(ValueError, match="regenerate them for this manifest"):
        load_pk_batches(path, "other")
    with pytest.raises(ValueError, match="pk_images=3, not 4"):
        load_pk_batches(path, "abc", pk_images=4)
    triplets = save_triplets(tmp_path / "t.npy", np.zeros((2, 3), np.int32), {"manifest_fingerprint": "abc"})
    with pytest.raises(ValueError, match="'facenet-triplets-1', not PK batches"):
        load_pk_batches(triplets, "abc")
    with pytest.raises(ValueError, match="manifest_fingerprint"):
        save_pk_batches(tmp_path / "x.npy", batches, {"seed": 0})
    sidecar_path(path).unlink()
    with pytest.raises(ValueError, match="no epoch_1.json sidecar"):
        load_pk_batches(path, "abc")


def test_params_come_from_the_configs_pk_batches_fields():
    from facenet_core.config import Config
    from facenet_core.config.stages import STAGE_FIELDS

    config = Config(sampling="pk", mining="batch_hard", pk_identities=8, pk_images=2, iterations_per_epoch=3, seed=5)
    assert PKParams.from_config(config) == PKParams(seed=5, iterations_per_epoch=3, pk_identities=8, pk_images=2)
    assert set(PKParams.__dataclass_fields__) == set(STAGE_FIELDS["pk-batches"])
