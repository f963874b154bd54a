"""Checkpoint files: the seed's keys, plain types only, atomic writes, retention, seed compatibility.

Layout under runs/<key>/checkpoints/: epoch_<e>.pt (weights + the seed's keys, kept for
re-evaluation), last.pt and best.pt (the full training state: optimiser, scheduler, RNG, config).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path
from facenet_core.workspace import BEST_CHECKPOINT, LAST_CHECKPOINT, epoch_checkpoint_name

SEED_KEYS = (
    "epoch",
    "embedding_dimension",
    "batch_size_training",
    "model_state_dict",
    "model_architecture",
    "optimizer_model_state_dict",
    "best_distance_threshold",
)
TRAINING_STATE_KEYS = ("optimizer_model_state_dict", "scheduler", "rng")
WRAPPER_PREFIXES = ("model.", "module.", "_orig_mod.")
# The seed's InceptionResNetV2 (Cadene's pretrainedmodels) names its head `last_linear`; timm `classif`.
HEAD_RENAMES = {"inceptionresnetv2": ("last_linear.", "classif.")}
EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def _numpy_globals() -> list:
    """What unpickling a numpy float64 needs (the seed's best_distance_threshold), under numpy 1 and 2 names."""
    from numpy._core.multiarray import scalar

    dtype_classes = [type(np.dtype(code)) for code in ("f8", "f4", "i8", "i4")]
    return [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        *dtype_classes,
    ]


def epoch_path(checkpoint_dir: str | os.PathLike, epoch: int) -> Path:
    """runs/<key>/checkpoints/epoch_<e>.pt"""
    return Path(checkpoint_dir) / epoch_checkpoint_name(epoch)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """torch.save `state` atomically (temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (seed wrapper `model.`, DDP `module.`, torch.compile `_orig_mod.`)."""
    cleaned = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        cleaned[key] = value
    return cleaned


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict with the seed's keys, its weights named as `create_model`'s.

    Loads with weights_only=True, allowing only numpy's scalar and dtype globals (the seed's
    numpy float64 threshold); CUDA tensors are mapped to `map_location`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = _torch_load(path, map_location)
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        raise UserError(f"checkpoint {path} has no model_state_dict: not a facenet checkpoint (ours or the seed's)")
    checkpoint = {key: _plain(value) for key, value in checkpoint.items()}
    weights = strip_prefixes(checkpoint["model_state_dict"])
    old, new = HEAD_RENAMES.get(checkpoint.get("model_architecture", ""), ("", ""))
    if old:
        weights = {new + k[len(old) :] if k.startswith(old) else k: v for k, v in weights.items()}
    checkpoint["model_state_dict"] = weights
    return checkpoint


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """torch.load(weights_only=True); a file that is no checkpoint, or that would run code, is a UserError."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as error:  # torch raises many types for bytes it cannot parse
        refused = re.search(r"GLOBAL (\S+)", str(error))
        if refused:
            raise UserError(
                f"checkpoint {path} was refused: loading it would call {refused.group(1)}, and only tensors and "
                "plain values are loaded; use a checkpoint saved by facenet-flow or by the seed"
            ) from None
        raise UserError(
            f"checkpoint {path} is not a PyTorch checkpoint ({type(error).__name__} while reading it): "
            "give a .pt file saved by facenet-flow or by the seed"
        ) from None


def stored_epoch(path: str | os.PathLike) -> int | None:
    """The epoch a checkpoint of ours holds, None when there is no file; its tensors stay unread."""
    if not Path(path).is_file():
        return None
    with torch.serialization.safe_globals(_numpy_globals()):
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def load_model_from_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The checkpoint's model (architecture and embedding size from its keys) in eval mode."""
    from facenet_core.models import create_model

    checkpoint = load_checkpoint(path, map_location=device)
    for key in ("model_architecture", "embedding_dimension"):
        if key not in checkpoint:
            raise UserError(f"checkpoint {path} lacks {key!r}: cannot rebuild its model")
    model = create_model(checkpoint["model_architecture"], int(checkpoint["embedding_dimension"]))
    load_weights(model, checkpoint, path)
    return model.to(device).eval(), checkpoint


def load_weights(model: nn.Module, checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """The checkpoint's weights into `model`; a UserError naming the file when they do not fit."""
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as error:
        mismatch = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), None)
        detail = mismatch or str(error).splitlines()[0]
        architecture, dimension = checkpoint.get("model_architecture"), checkpoint.get("embedding_dimension")
        raise UserError(
            f"checkpoint {path}: its weights do not fit a {architecture} with embedding_dimension={dimension}, "
            f"as its keys say ({detail}); re-save it with the keys of the model it holds"
        ) from None


def weights_only_state(state: dict[str, Any]) -> dict[str, Any]:
    """The per-epoch file's content: the seed's keys (optimiser state None), no scheduler or RNG."""
    kept = {key: value for key, value in state.items() if key not in TRAINING_STATE_KEYS}
    return {**kept, "optimizer_model_state_dict": None}


def prune_epochs(checkpoint_dir: str | os.PathLike, retention: int | None) -> list[Path]:
    """Delete epoch_<e>.pt files beyond the newest `retention` (None keeps all), except the one of the
    epoch best.pt holds (so the best epoch stays evaluable and registrable); returns the removed."""
    if retention is None:
        return []
    checkpoint_dir = Path(checkpoint_dir)
    best_epoch = stored_epoch(checkpoint_dir / BEST_CHECKPOINT)
    epochs = sorted(
        (int(match.group(1)), path)
        for path in checkpoint_dir.glob("epoch_*.pt")
        if (match := EPOCH_FILE.match(path.name))
    )
    doomed = [path for epoch, path in epochs[: max(len(epochs) - retention, 0)] if epoch != best_epoch]
    for path in doomed:
        path.unlink()
    return doomed


def pruned_by_retention(path: str | os.PathLike) -> bool:
    """True for a missing epoch_<e>.pt whose run goes on (last.pt present): `prune_epochs` removed it."""
    path = Path(path)
    return bool(EPOCH_FILE.match(path.name)) and not path.exists() and (path.parent / LAST_CHECKPOINT).is_file()


def weights_of_epoch(checkpoint: str | os.PathLike, epoch: int) -> Path:
    """The file holding epoch `epoch`'s weights: `checkpoint` (its epoch_<e>.pt), or the run's best.pt
    when retention deleted that file and best.pt is that epoch."""
    path = Path(checkpoint)
    if path.is_file():
        return path
    best = path.parent / BEST_CHECKPOINT
    if stored_epoch(best) == epoch:
        return best
    raise FileNotFoundError(f"weights of epoch {epoch} are gone: {path} was deleted and best.pt holds another epoch")


def record_evaluation(
    checkpoint_dir: str | os.PathLike, epoch: int, best_distance_threshold: float, is_best: bool
) -> None:
    """Store an epoch's evaluated threshold in last.pt (when last.pt is that epoch); copy that state
    (last.pt's, else the epoch file's) to best.pt when `is_best` (`evaluate.selection` decides).

    The per-epoch file is left untouched: it is a finished stage's output, identified by its sha256.
    """
    checkpoint_dir = Path(checkpoint_dir)
    last = checkpoint_dir / LAST_CHECKPOINT
    last_is_epoch = stored_epoch(last) == epoch
    state = load_checkpoint(last if last_is_epoch else epoch_path(checkpoint_dir, epoch))
    state["best_distance_threshold"] = float(best_distance_threshold)
    if last_is_epoch:
        save_checkpoint(last, state)
    if is_best:
        save_checkpoint(checkpoint_dir / BEST_CHECKPOINT, state)
