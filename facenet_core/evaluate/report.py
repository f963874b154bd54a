"""Evaluate a model on a pairs set and record the result: log line, metrics table, plots."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from torch import nn

from facenet_core.config.schema import EvalSet
from facenet_core.evaluate.embed import DISTANCE_METRICS, embed_images, pair_distances
from facenet_core.evaluate.metrics import FAR_TARGET, ROC_THRESHOLDS, PairMetrics, kfold_metrics, train_test_metrics
from facenet_core.evaluate.pairs import ResolvedPairs, filter_people, read_pairs, read_people, resolve_pairs
from facenet_core.evaluate.plots import plot_accuracy, plot_distances, plot_roc
from facenet_core.evaluate.selection import comparable_history
from facenet_core.fileio import atomic_path

log = logging.getLogger(__name__)

# Bump when evaluation output would change for the same checkpoint and eval set.
# 2: metrics rows tagged with their evaluation settings. 3: a distance histogram per evaluation.
STAGE_VERSION = 3
METRICS_TABLE = "metrics.parquet"


@dataclass(frozen=True)
class EvalResult:
    """Summary metrics, the fold-averaged ROC curve, the reported pairs' distances and labels
    (`issame`), and the images that were left out."""

    metrics: dict[str, float]
    fpr: np.ndarray
    tpr: np.ndarray
    distances: np.ndarray
    issame: np.ndarray
    thresholds: np.ndarray = field(default_factory=lambda: ROC_THRESHOLDS.copy())
    folds: dict[str, np.ndarray] = field(default_factory=dict)
    missing_images: list[str] = field(default_factory=list)


class ReportPaths(NamedTuple):
    """Files written for one evaluation (the table and accuracy plot are shared across epochs)."""

    metrics: Path
    roc: Path
    accuracy: Path
    distances: Path


def _load_pairs(pairs_file: str, root: str, people_file: str | None) -> ResolvedPairs:
    pairs = read_pairs(pairs_file)
    if people_file:
        pairs = filter_people(pairs, read_people(people_file))
    resolved = resolve_pairs(pairs, root)
    if resolved.missing_pairs:
        log.warning(
            "%s: %d pairs left out, %d images missing under %s (e.g. %s)",
            pairs_file,
            resolved.missing_pairs,
            len(resolved.missing_images),
            root,
            ", ".join(resolved.missing_images[:3]),
        )
    return resolved


def evaluate_model(
    model: nn.Module,
    eval_set: EvalSet,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    device: str = "auto",
    distance_metric: str = "euclidean",
    flip_tta: bool = False,
    num_workers: int | None = None,
) -> EvalResult:
    """Evaluate `model` on `eval_set`: its root (image folder), pairs, protocol (kfold10 |
    train_test), train_pairs (train_test only) and people_file (keeps only pairs of listed people;
    applied to `pairs`, not to `train_pairs`, whose people are disjoint in View 1). Every image is
    embedded once; pairs with a missing or unreadable image are left out and counted in
    `missing_pairs` (and `missing_train_pairs` for the threshold pairs of train_test).
    """
    protocol = eval_set.protocol
    if distance_metric not in DISTANCE_METRICS:
        raise ValueError(f"distance_metric must be one of {DISTANCE_METRICS}, got {distance_metric!r}")
    for name in ("root", "pairs"):
        if not getattr(eval_set, name):
            raise ValueError(f"eval set {eval_set.name!r} needs {name!r} (image folder and pairs file)")
    root = eval_set.root
    sets = [_load_pairs(eval_set.pairs, root, eval_set.people_file)]
    if protocol == "train_test":
        sets.append(_load_pairs(str(eval_set.train_pairs), root, None))

    images = [path for s in sets for path in s.images]
    unique = {path: i for i, path in enumerate(dict.fromkeys(images))}
    embeddings, readable_images = embed_images(
        model,
        list(unique),
        image_size=image_size,
        mean=mean,
        std=std,
        batch_size=batch_size,
        device=device,
        flip_tta=flip_tta,
        num_workers=num_workers,
    )
    unreadable = sorted(f"{path.parent.name}/{path.stem}" for path, i in unique.items() if not readable_images[i])
    per_set = []
    for s in sets:
        remap = np.array([unique[path] for path in s.images], dtype=np.int64)
        left, right = remap[s.left], remap[s.right]
        readable = readable_images[left] & readable_images[right]
        distances = pair_distances(embeddings, left[readable], right[readable], distance_metric)
        per_set.append((s.pairs.select(readable), distances, s.missing_pairs + int((~readable).sum())))

    test_pairs, test_d, test_missing = per_set[0]
    if not len(test_pairs):
        raise ValueError(f"no pair of {eval_set.pairs} has both images readable under {root}")
    if protocol == "kfold10":
        metrics = kfold_metrics(test_d, test_pairs.issame, test_pairs.folds(10))
    else:
        train_set, train_d, train_missing = per_set[1]
        metrics = train_test_metrics(train_d, train_set.issame, test_d, test_pairs.issame)
    summary = metrics.summary()
    summary["num_pairs"] = len(test_pairs)
    summary["num_same_pairs"] = int(np.sum(test_pairs.issame))  # with num_pairs: the majority baseline
    summary["missing_pairs"] = test_missing
    if protocol == "train_test":
        summary["missing_train_pairs"] = train_missing
    missing_images = sorted({name for s in sets for name in s.missing_images} | set(unreadable))
    return EvalResult(
        metrics=summary,
        fpr=metrics.fpr,
        tpr=metrics.tpr,
        distances=np.asarray(test_d, dtype=np.float64),
        issame=np.asarray(test_pairs.issame, dtype=bool),
        folds=_fold_arrays(metrics),
        missing_images=missing_images,
    )


def _fold_arrays(metrics: PairMetrics) -> dict[str, np.ndarray]:
    keys = ("accuracy", "precision", "recall", "thresholds", "tar", "far")
    return {key: getattr(metrics, key) for key in keys}


def format_log_line(epoch: int | None, set_name: str, metrics: Mapping[str, float]) -> str:
    """One line in the seed's style: accuracy ± std, precision, recall, AUC, threshold, TAR@FAR."""
    head = f"Epoch {epoch} " if epoch is not None else ""
    return (
        f"{head}{set_name}: Accuracy {metrics['accuracy']:.4f}+-{metrics['accuracy_std']:.4f}\t"
        f"Precision {metrics['precision']:.4f}+-{metrics['precision_std']:.4f}\t"
        f"Recall {metrics['recall']:.4f}+-{metrics['recall_std']:.4f}\t"
        f"ROC Area Under Curve: {metrics['roc_auc']:.4f}\t"
        f"Best distance threshold: {metrics['best_distance_threshold']:.2f}+-{metrics['threshold_std']:.2f}\t"
        f"TAR: {metrics['tar_at_far']:.4f}+-{metrics['tar_at_far_std']:.4f} @ FAR: {metrics['far']:.4f}"
    )


def read_metrics_table(report_dir: str | os.PathLike) -> pd.DataFrame:
    """The run's metrics table (one row per epoch and set), empty when nothing was evaluated yet."""
    path = Path(report_dir) / METRICS_TABLE
    if not path.is_file():
        columns = {"epoch": "int64", "set": "str", "settings": "str"}
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})
    table = pd.read_parquet(path)
    if "settings" not in table.columns:
        table.insert(2, "settings", "")
    return table


def write_epoch_report(
    report_dir: str | os.PathLike, epoch: int, set_name: str, result: EvalResult, settings: str = ""
) -> ReportPaths:
    """Record one evaluation: its row in metrics.parquet (replacing an earlier one for the same
    epoch and set), roc_<set>_epoch_<e>.png, distances_<set>_epoch_<e>.png (same and different
    pairs' distances with the chosen threshold and the FAR=1e-3 one marked), and accuracy_<set>.png
    over the epochs evaluated so far under the same `settings` (a tag of the evaluation parameters:
    rows of other settings stay in the table but are never compared with these)."""
    report_dir = Path(report_dir)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    row = {"epoch": int(epoch), "set": set_name, "settings": settings, **metrics}
    table = read_metrics_table(report_dir)
    table = table[~((table["epoch"] == epoch) & (table["set"] == set_name))]
    rows = pd.DataFrame([row]) if table.empty else pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    table = rows.sort_values(["set", "epoch"]).reset_index(drop=True)
    metrics_path = report_dir / METRICS_TABLE
    with atomic_path(metrics_path) as tmp:
        table.to_parquet(tmp, index=False)

    roc_path = report_dir / f"roc_{set_name}_epoch_{epoch}.png"
    plot_roc(roc_path, result.fpr, result.tpr, result.metrics["roc_auc"], title=f"ROC {set_name}, epoch {epoch}")
    distances_path = report_dir / f"distances_{set_name}_epoch_{epoch}.png"
    plot_distances(
        distances_path,
        result.distances,
        result.issame,
        distance_thresholds(result.metrics),
        title=f"Pair distances {set_name}, epoch {epoch}",
    )
    history = comparable_history(table, set_name, settings)
    accuracy_path = report_dir / f"accuracy_{set_name}.png"
    plot_accuracy(
        accuracy_path,
        history["epoch"].to_numpy(),
        history["accuracy"].to_numpy(),
        history["accuracy_std"].to_numpy(),
        title=f"{set_name} accuracy",
    )
    log.info(format_log_line(epoch, set_name, result.metrics))
    return ReportPaths(metrics=metrics_path, roc=roc_path, accuracy=accuracy_path, distances=distances_path)


def distance_thresholds(metrics: Mapping[str, float]) -> dict[str, float]:
    """The thresholds a distance histogram marks: the accuracy-maximising one, and the one for
    FAR=1e-3 when the evaluation found it."""
    marked = {"best-accuracy threshold": float(metrics["best_distance_threshold"])}
    if "threshold_at_far" in metrics:
        marked[f"threshold at FAR={FAR_TARGET:g}"] = float(metrics["threshold_at_far"])
    return marked
