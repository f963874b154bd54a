"""LFW verification metrics with the seed's (Sandberg's) definitions, computed without threshold loops.

A pair is predicted "same" when its distance is strictly below the threshold. For each split the
accuracy-maximising threshold (first one on ties) of `ROC_THRESHOLDS` is chosen on the training
pairs and applied to the test pairs; the ROC curve is the per-threshold TPR/FPR averaged over
splits; TAR@FAR uses the threshold interpolated (np.interp) from the training FAR curve over
`VAL_THRESHOLDS`, or 0 when no training FAR reaches the target. Rates with an empty denominator
are 0 (precision with no positive prediction included); TAR and FAR are both 0 when a set has no
same pairs.

Distances are sorted once; the number of pairs of each group (fold) and class below any number of
thresholds then comes from binary searches instead of one pass over the pairs per threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import auc

ROC_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
FAR_TARGET = 1e-3
NUM_FOLDS = 10


@dataclass(frozen=True)
class PairMetrics:
    """Per-split results (arrays of length `num_splits`) and the split-averaged ROC curve."""

    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray
    tar: np.ndarray
    far: np.ndarray
    far_thresholds: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    roc_auc: float

    def summary(self) -> dict[str, float]:
        """Means and population standard deviations over splits, as the seed reports them."""
        out: dict[str, float] = {}
        for key, values in (
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("tar_at_far", self.tar),
            ("far", self.far),
        ):
            out[key] = float(np.mean(values))
            out[f"{key}_std"] = float(np.std(values))
        out["roc_auc"] = float(self.roc_auc)
        out["best_distance_threshold"] = float(np.mean(self.thresholds))
        out["threshold_std"] = float(np.std(self.thresholds))
        out["threshold_at_far"] = float(np.mean(self.far_thresholds))
        out["num_folds"] = len(self.accuracy)
        return out


class _CountsBelow:
    """Counts of pairs with distance < t per (group, class), for any thresholds t, from one sort."""

    def __init__(self, distances: np.ndarray, issame: np.ndarray, groups: np.ndarray, num_groups: int):
        distances = np.asarray(distances, dtype=np.float64)
        if np.isnan(distances).any():
            raise ValueError("distances contain NaN: the model's embeddings are not finite (diverged weights?)")
        order = np.argsort(distances, kind="stable")
        self.sorted = distances[order]
        code = np.asarray(groups, dtype=np.int64)[order] * 2 + (~np.asarray(issame, dtype=bool)[order])
        self.positions = [np.flatnonzero(code == c) for c in range(2 * num_groups)]
        self.num_groups = num_groups
        self.totals = np.array([len(p) for p in self.positions], dtype=np.int64).reshape(num_groups, 2)

    def below(self, thresholds: np.ndarray) -> np.ndarray:
        """Array (groups, 2, len(thresholds)): class 0 = same pairs, class 1 = different pairs."""
        cut = np.searchsorted(self.sorted, thresholds, side="left")
        counts = np.stack([np.searchsorted(p, cut, side="left") for p in self.positions])
        return counts.reshape(self.num_groups, 2, len(thresholds))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _evaluate_splits(
    counts: _CountsBelow, train_weight: np.ndarray, test_group: np.ndarray, far_target: float
) -> PairMetrics:
    """Metrics for splits whose training set is the groups weighted 1 in `train_weight` (splits x groups)."""
    totals_test = counts.totals[test_group]
    totals_train = train_weight @ counts.totals
    pos_test, neg_test = totals_test[:, 0:1], totals_test[:, 1:2]
    pos_train, neg_train = totals_train[:, 0:1], totals_train[:, 1:2]

    grid = counts.below(ROC_THRESHOLDS)
    test = grid[test_group]
    train = np.einsum("sg,gct->sct", train_weight, grid)
    train_accuracy = (train[:, 0] + neg_train - train[:, 1]) / (pos_train + neg_train)
    best = np.argmax(train_accuracy, axis=1)
    rows = np.arange(len(best))
    tp, fp = test[rows, 0, best], test[rows, 1, best]
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, pos_test[:, 0])
    accuracy = (tp + neg_test[:, 0] - fp) / (pos_test[:, 0] + neg_test[:, 0])
    tpr = np.mean(_ratio(test[:, 0], pos_test), 0)
    fpr = np.mean(_ratio(test[:, 1], neg_test), 0)

    val = counts.below(VAL_THRESHOLDS)
    val_train = np.einsum("sg,gct->sct", train_weight, val)
    far_train = np.where(pos_train > 0, val_train[:, 1] / np.maximum(neg_train, 1), 0.0)
    val_thresholds = np.array(
        [np.interp(far_target, far, VAL_THRESHOLDS) if far.max() >= far_target else 0.0 for far in far_train]
    )
    at = counts.below(val_thresholds)[test_group, :, rows]
    has_same = pos_test[:, 0] > 0
    tar = np.where(has_same, _ratio(at[:, 0], pos_test[:, 0]), 0.0)
    far = np.where(has_same, at[:, 1] / np.maximum(neg_test[:, 0], 1), 0.0)

    return PairMetrics(
        accuracy=accuracy,
        precision=precision,
        recall=recall,
        thresholds=ROC_THRESHOLDS[best],
        tar=tar,
        far=far,
        far_thresholds=val_thresholds,
        tpr=tpr,
        fpr=fpr,
        roc_auc=float(auc(fpr, tpr)),
    )


def kfold_metrics(
    distances: np.ndarray,
    issame: np.ndarray,
    folds: np.ndarray | None = None,
    *,
    num_folds: int = NUM_FOLDS,
    far_target: float = FAR_TARGET,
) -> PairMetrics:
    """Cross-validated metrics: each fold tested with the threshold chosen on the others.

    `folds` gives each pair's fold (0..num_folds-1); by default the pairs are cut into contiguous
    folds in order, sized as scikit-learn's KFold. Folds left empty (pairs filtered out) are not
    evaluated.
    """
    distances = np.asarray(distances, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    if distances.shape != issame.shape or distances.ndim != 1:
        raise ValueError(f"distances {distances.shape} and issame {issame.shape} must be 1-D of the same length")
    if folds is None:
        folds = np.concatenate([np.full(len(part), k) for k, part in enumerate(np.array_split(distances, num_folds))])
    folds = np.asarray(folds, dtype=np.int64)
    if folds.shape != distances.shape or (len(folds) and (folds.min() < 0 or folds.max() >= num_folds)):
        raise ValueError(f"folds must give each pair a fold in 0..{num_folds - 1}")
    counts = _CountsBelow(distances, issame, folds, num_folds)
    used = np.flatnonzero(counts.totals.sum(1) > 0)
    if len(used) < 2:
        raise ValueError(
            f"kfold evaluation needs pairs in at least 2 folds, got {len(used)} "
            "(a View 1 file is one block: use protocol train_test)"
        )
    train_weight = np.ones((len(used), num_folds), dtype=np.int64)
    train_weight[np.arange(len(used)), used] = 0
    return _evaluate_splits(counts, train_weight, used, far_target)


def train_test_metrics(
    train_distances: np.ndarray,
    train_issame: np.ndarray,
    test_distances: np.ndarray,
    test_issame: np.ndarray,
    *,
    far_target: float = FAR_TARGET,
) -> PairMetrics:
    """Metrics of the test pairs with the thresholds chosen once on the training pairs (View 1)."""
    for name, values in (("train", train_distances), ("test", test_distances)):
        if len(values) == 0:
            raise ValueError(f"train_test evaluation has no {name} pairs")
    distances = np.concatenate([np.asarray(train_distances, dtype=np.float64), np.asarray(test_distances)])
    issame = np.concatenate([np.asarray(train_issame, dtype=bool), np.asarray(test_issame, dtype=bool)])
    if distances.shape != issame.shape:
        raise ValueError("each set needs as many distances as labels")
    groups = np.repeat([0, 1], [len(train_distances), len(test_distances)])
    counts = _CountsBelow(distances, issame, groups, 2)
    return _evaluate_splits(counts, np.array([[1, 0]]), np.array([1]), far_target)
