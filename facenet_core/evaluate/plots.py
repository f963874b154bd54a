"""PNG plots of evaluations (matplotlib's Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from facenet_core.fileio import atomic_path


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
