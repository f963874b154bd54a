"""PNG plots of evaluations (matplotlib's Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from facenet_core.fileio import atomic_path

LINE_STYLES = ("-", "--", ":", "-.")


def _figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot state, no display, safe in worker threads."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def plot_roc(path: str | os.PathLike, fpr: np.ndarray, tpr: np.ndarray, roc_auc: float, title: str) -> Path:
    """The fold-averaged ROC curve with its area in the legend."""
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, color="tab:red", lw=2, label=f"ROC (AUC = {roc_auc:.4f})")
    ax.plot([0, 1], [0, 1], color="tab:blue", lw=1, linestyle="--", label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="False positive rate", ylabel="True positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy(
    path: str | os.PathLike, epochs: np.ndarray, accuracy: np.ndarray, accuracy_std: np.ndarray, title: str
) -> Path:
    """Accuracy (mean over folds, std as error bars) against epoch."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.errorbar(epochs, accuracy, yerr=accuracy_std, marker="o", capsize=3, color="tab:red")
    lowest = float(np.min(np.asarray(accuracy) - np.asarray(accuracy_std))) if len(accuracy) else 0.0
    bottom = max(0.0, np.floor((lowest - 0.02) * 20) / 20)  # zoomed in once accuracies get high
    ax.set(xlabel="Epoch", ylabel="Accuracy", title=title, ylim=(bottom, 1.0))
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)


class DistanceHistogram(NamedTuple):
    """What `plot_distances` drew: shared bin edges, counts per class and the thresholds it marked."""

    path: Path
    edges: np.ndarray
    same_counts: np.ndarray
    different_counts: np.ndarray
    thresholds: dict[str, float]


def plot_distances(
    path: str | os.PathLike,
    distances: np.ndarray,
    issame: np.ndarray,
    thresholds: dict[str, float],
    title: str,
    bins: int = 80,
) -> DistanceHistogram:
    """Histograms of the same-person and different-person pair distances on shared bins, with each
    threshold of `thresholds` (label -> distance) drawn as a vertical line: where the classes
    overlap, and what a threshold keeps on each side."""
    distances = np.asarray(distances, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    marked = {label: float(value) for label, value in thresholds.items()}
    span = np.concatenate([distances, list(marked.values())])
    low, high = (float(span.min()), float(span.max())) if span.size else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    same, _ = np.histogram(distances[issame], bins=edges)
    different, _ = np.histogram(distances[~issame], bins=edges)
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.stairs(different, edges, fill=True, alpha=0.5, color="tab:blue", label=f"different ({int((~issame).sum())})")
    ax.stairs(same, edges, fill=True, alpha=0.5, color="tab:red", label=f"same ({int(issame.sum())})")
    for index, (label, value) in enumerate(marked.items()):
        style = LINE_STYLES[index % len(LINE_STYLES)]
        ax.axvline(value, color="black", linestyle=style, lw=1.5, label=f"{label} = {value:.3f}")
    ax.set(xlabel="Distance", ylabel="Pairs", title=title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return DistanceHistogram(_save(fig, path), edges, same, different, marked)
