"""The vectorised metrics against a direct loop over thresholds (the seed's definitions) and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold

from facenet_core.evaluate.metrics import (
    ROC_THRESHOLDS,
    VAL_THRESHOLDS,
    kfold_metrics,
    train_test_metrics,
)

# --- direct loop implementation: one pass over the pairs per threshold ----------------------------


def loop_rates(threshold, dist, same):
    """(tpr, fpr, precision, recall, accuracy) at one threshold, prediction `dist < threshold`."""
    predicted = dist < threshold
    tp = int(np.sum(predicted & same))
    fp = int(np.sum(predicted & ~same))
    tn = int(np.sum(~predicted & ~same))
    fn = int(np.sum(~predicted & same))
    tpr = tp / (tp + fn) if tp + fn else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return tpr, fpr, precision, tpr, (tp + tn) / len(dist)


def loop_val_far(threshold, dist, same):
    """(tar, far) at one threshold; both 0 without same pairs, FAR over max(1, different pairs)."""
    num_same = int(np.sum(same))
    num_diff = max(len(same) - num_same, 1)
    if num_same == 0:
        return 0.0, 0.0
    accepted = dist < threshold
    return int(np.sum(accepted & same)) / num_same, int(np.sum(accepted & ~same)) / num_diff


def loop_split_metrics(splits, far_target=1e-3):
    """Per-split arrays + averaged ROC for splits given as (train_dist, train_same, test_dist, test_same)."""
    out = {k: [] for k in ("accuracy", "precision", "recall", "thresholds", "tar", "far", "far_thresholds")}
    tprs, fprs = [], []
    for train_d, train_s, test_d, test_s in splits:
        train_acc = [loop_rates(t, train_d, train_s)[4] for t in ROC_THRESHOLDS]
        best = ROC_THRESHOLDS[int(np.argmax(train_acc))]
        curve = [loop_rates(t, test_d, test_s) for t in ROC_THRESHOLDS]
        tprs.append([c[0] for c in curve])
        fprs.append([c[1] for c in curve])
        _, _, precision, recall, accuracy = loop_rates(best, test_d, test_s)
        far_train = np.array([loop_val_far(t, train_d, train_s)[1] for t in VAL_THRESHOLDS])
        threshold = np.interp(far_target, far_train, VAL_THRESHOLDS) if far_train.max() >= far_target else 0.0
        tar, far = loop_val_far(threshold, test_d, test_s)
        for key, value in zip(out, (accuracy, precision, recall, best, tar, far, threshold), strict=True):
            out[key].append(value)
    out = {k: np.array(v) for k, v in out.items()}
    out["tpr"] = np.mean(np.array(tprs), 0)
    out["fpr"] = np.mean(np.array(fprs), 0)
    return out


def loop_kfold(dist, same, far_target=1e-3):
    splits = [
        (dist[train], same[train], dist[test], same[test])
        for train, test in KFold(n_splits=10, shuffle=False).split(np.arange(len(dist)))
    ]
    return loop_split_metrics(splits, far_target)


def assert_same(result, reference):
    for key in ("accuracy", "precision", "recall", "thresholds", "tar", "far", "far_thresholds", "tpr", "fpr"):
        np.testing.assert_allclose(getattr(result, key), reference[key], rtol=0, atol=1e-12, err_msg=key)


# --- inputs -------------------------------------------------------------------------------------


def random_case(seed, n=240, separation=0.4):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    dist = np.clip(rng.normal(1.1, 0.3, n) + np.where(same, -separation, separation), 0, 3.99)
    return dist, same


def grid_case(seed, n=200):
    """Distances exactly on grid points and heavily tied."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    grid = VAL_THRESHOLDS if seed % 2 else ROC_THRESHOLDS
    picks = rng.integers(80, 160, n) * (len(grid) // 400) - np.where(same, 10, 0)
    return grid[picks], same


@pytest.mark.parametrize("seed", range(4))
def test_kfold_equals_loop_on_random_pairs(seed):
    dist, same = random_case(seed)
    assert_same(kfold_metrics(dist, same), loop_kfold(dist, same))


@pytest.mark.parametrize("seed", range(4))
def test_kfold_equals_loop_on_grid_points_and_ties(seed):
    dist, same = grid_case(seed)
    assert_same(kfold_metrics(dist, same), loop_kfold(dist, same))


def test_kfold_equals_loop_with_heavy_ties_and_separated_classes():
    same = np.tile([True, False], 60)
    tied = np.where(same, 0.5, 0.5)
    assert_same(kfold_metrics(tied, same), loop_kfold(tied, same))
    separated = np.where(same, 0.2, 1.6)
    result = kfold_metrics(separated, same)
    assert_same(result, loop_kfold(separated, same))
    assert np.all(result.accuracy == 1.0)
    assert np.all(result.thresholds == ROC_THRESHOLDS[21])  # first threshold above 0.2
    assert result.roc_auc == pytest.approx(1.0)


def test_far_target_unreachable_gives_threshold_zero():
    # no different pair is ever accepted on the grid: all different distances are >= 4
    same = np.tile([True, False], 50)
    dist = np.where(same, 0.3, 5.0)
    result = kfold_metrics(dist, same)
    assert_same(result, loop_kfold(dist, same))
    np.testing.assert_array_equal(result.tar, 0.0)  # threshold 0 accepts nothing
    np.testing.assert_array_equal(result.far, 0.0)
    assert result.summary()["threshold_at_far"] == 0.0


def test_folds_of_one_class_only():
    # View 1 layout: 100 same then 100 different pairs; contiguous folds hold one class each
    same = np.repeat([True, False], 100)
    dist = np.where(same, 0.6, 1.2) + np.linspace(0, 0.3, 200)
    result = kfold_metrics(dist, same)
    reference = loop_kfold(dist, same)
    assert_same(result, reference)
    # folds of different pairs only: no positive prediction at the chosen threshold -> precision 0
    np.testing.assert_array_equal(result.precision[5:], 0.0)
    np.testing.assert_array_equal(result.tar[5:], 0.0)  # no same pair in the test fold


def test_precision_is_zero_without_positive_predictions():
    same = np.tile([True, False], 50)
    dist = np.where(same, 3.995, 0.001)  # inverted: best training accuracy at threshold 0
    result = kfold_metrics(dist, same)
    assert_same(result, loop_kfold(dist, same))
    np.testing.assert_array_equal(result.thresholds, 0.0)
    np.testing.assert_array_equal(result.precision, 0.0)
    np.testing.assert_array_equal(result.accuracy, 0.5)


def test_uneven_pair_count_uses_kfold_fold_sizes():
    dist, same = random_case(7, n=233)
    assert_same(kfold_metrics(dist, same), loop_kfold(dist, same))


def test_explicit_folds_with_an_empty_fold_skip_it():
    dist, same = random_case(3, n=200)
    folds = np.repeat(np.arange(10), 20)
    keep = folds != 4
    result = kfold_metrics(dist[keep], same[keep], folds[keep])
    splits = []
    for k in sorted(set(range(10)) - {4}):
        test, train = keep & (folds == k), keep & (folds != k)
        splits.append((dist[train], same[train], dist[test], same[test]))
    assert len(result.accuracy) == 9
    assert_same(result, loop_split_metrics(splits))


def test_kfold_needs_two_folds():
    with pytest.raises(ValueError, match="train_test"):
        kfold_metrics(np.ones(20), np.ones(20, bool), np.zeros(20, int))
    with pytest.raises(ValueError, match="NaN"):
        kfold_metrics(np.full(20, np.nan), np.ones(20, bool))


def test_train_test_equals_loop():
    train_d, train_s = random_case(11, n=300)
    test_d, test_s = random_case(12, n=150)
    result = train_test_metrics(train_d, train_s, test_d, test_s)
    assert_same(result, loop_split_metrics([(train_d, train_s, test_d, test_s)]))
    assert len(result.accuracy) == 1
    assert result.summary()["accuracy_std"] == 0.0


def test_roc_points_agree_with_sklearn_roc_curve():
    dist, same = grid_case(5)
    test_d, test_s = random_case(6, n=150)
    result = train_test_metrics(dist, same, test_d, test_s)
    fpr, tpr, score_thresholds = roc_curve(test_s, -test_d, drop_intermediate=False)
    for t, our_fpr, our_tpr in zip(ROC_THRESHOLDS, result.fpr, result.tpr, strict=True):
        # d < t  <=>  -d > -t: the last sklearn point whose score threshold is above -t
        i = np.flatnonzero(score_thresholds > -t)[-1]
        assert (our_fpr, our_tpr) == pytest.approx((fpr[i], tpr[i]), abs=1e-12)


def test_auc_equals_sklearn_when_distances_lie_on_the_grid():
    train_d, train_s = random_case(8)
    rng = np.random.default_rng(9)
    test_s = rng.random(300) < 0.5
    test_d = ROC_THRESHOLDS[rng.integers(20, 390, 300) - np.where(test_s, 15, 0)]
    result = train_test_metrics(train_d, train_s, test_d, test_s)
    assert result.roc_auc == pytest.approx(roc_auc_score(test_s, -test_d), abs=1e-12)


def test_summary_means_and_population_std():
    dist, same = random_case(2)
    result = kfold_metrics(dist, same)
    summary = result.summary()
    assert summary["accuracy"] == pytest.approx(result.accuracy.mean())
    assert summary["accuracy_std"] == pytest.approx(np.std(result.accuracy, ddof=0))
    assert summary["best_distance_threshold"] == pytest.approx(result.thresholds.mean())
    assert summary["threshold_std"] == pytest.approx(result.thresholds.std())
    assert summary["num_folds"] == 10
    assert summary["threshold_at_far"] == pytest.approx(loop_kfold(dist, same)["far_thresholds"].mean())
