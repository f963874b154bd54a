"""The class index both epoch generators draw with (facenet_core/data/epoch_index.py)."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_core.data.epoch_index import class_index


def test_sorted_labels_give_starts_and_counts_with_empty_classes():
    labels = np.array([0, 0, 0, 2, 2, 3, 5], dtype=np.int32)  # classes 1 and 4 hold no image
    order, starts, counts = class_index(labels)
    assert order is None
    assert counts.tolist() == [3, 0, 2, 1, 0, 1]
    assert starts.tolist() == [0, 3, 3, 5, 6, 6]
    assert counts.dtype == starts.dtype == np.int64


def test_shuffled_labels_give_the_same_classes_and_a_stable_order():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(50, dtype=np.int32), rng.integers(0, 6, 50))
    shuffled = rng.permutation(labels)
    _, starts, counts = class_index(labels)
    order, shuffled_starts, shuffled_counts = class_index(shuffled)
    assert np.array_equal(shuffled_starts, starts) and np.array_equal(shuffled_counts, counts)
    assert np.array_equal(shuffled[order], labels)
    assert np.array_equal(order, np.argsort(shuffled, kind="stable"))


@pytest.mark.parametrize("labels", [[-1, 0, 1], [1, -1, 0]])
def test_negative_labels_are_refused_sorted_or_not(labels):
    with pytest.raises(ValueError, match="non-negative"):
        class_index(np.array(labels, dtype=np.int32))
