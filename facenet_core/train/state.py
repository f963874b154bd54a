"""Build the model, optimiser and schedule of an epoch, restored from a checkpoint when given."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from facenet_core.config.loading import config_to_dict
from facenet_core.config.schema import Config
from facenet_core.models import create_model, unwrap_model
from facenet_core.train.checkpoints import TRAINING_STATE_KEYS, load_checkpoint, load_weights, stored_epoch
from facenet_core.train.optim import make_optimizer, make_scheduler, set_base_lr, set_position
from facenet_core.train.rng import capture_rng, restore_rng
from facenet_core.workspace import BEST_CHECKPOINT, LAST_CHECKPOINT

log = logging.getLogger(__name__)

# A parameter-group key only each optimiser has: tells which one wrote a state dict.
OPTIMIZER_SIGNATURES = {"adagrad": "initial_accumulator_value", "adam": "betas", "rmsprop": "alpha", "sgd": "nesterov"}


@dataclass
class TrainingState:
    """What an epoch trains, plus what resuming changed (reported in the epoch summary)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    resumed_from: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def optimizer_name(optimizer_state: dict[str, Any]) -> str | None:
    """Which of the seed's optimisers produced `optimizer_state` (None when unknown)."""
    group = optimizer_state["param_groups"][0]
    return next((name for name, key in OPTIMIZER_SIGNATURES.items() if key in group), None)


def _check_compatible(config: Config, checkpoint: dict[str, Any], path: str) -> None:
    for key, wanted in (
        ("model_architecture", config.model_architecture),
        ("embedding_dimension", config.embedding_dimension),
    ):
        if checkpoint.get(key) is not None and checkpoint[key] != wanted:
            raise ValueError(
                f"checkpoint {path} has {key}={checkpoint[key]!r} but the config asks for {wanted!r}; "
                f"set --{key} {checkpoint[key]} to resume it"
            )
    saved = checkpoint.get("optimizer_model_state_dict")
    if saved and (name := optimizer_name(saved)) not in (None, config.optimizer):
        raise ValueError(
            f"checkpoint {path} was trained with optimizer={name!r} but the config asks for "
            f"{config.optimizer!r}; set --optimizer {name} to resume it"
        )


def build_state(
    config: Config, epoch: int, device: torch.device, checkpoint_in: str | os.PathLike | None
) -> TrainingState:
    """Model (on `device`, channels_last if asked), optimiser and schedule positioned at `epoch`.

    From a checkpoint: weights, optimiser, scheduler and RNG are restored; a learning_rate that
    differs from the checkpoint's is applied and noted as `learning_rate_previous`. A per-epoch
    file holds weights only: the training state then comes from the run's last.pt or best.pt when
    one holds the same epoch and weights. Without any, the optimiser starts fresh: noted as
    `optimizer_state: fresh` (else `restored`) with the reason, and logged as a warning.
    """
    torch.manual_seed(config.seed)
    checkpoint = load_checkpoint(checkpoint_in) if checkpoint_in else None
    if checkpoint is not None:
        checkpoint, state_source = with_training_state(checkpoint, checkpoint_in)
    model = create_model(
        config.model_architecture, config.embedding_dimension, pretrained=config.pretrained and checkpoint is None
    )
    if checkpoint is not None:
        _check_compatible(config, checkpoint, str(checkpoint_in))
        load_weights(model, checkpoint, checkpoint_in)
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    model = model.to(device=device, memory_format=memory_format)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.learning_rate)
    scheduler = make_scheduler(optimizer, config.lr_schedule, config.iterations_per_epoch, config.epochs)
    state = TrainingState(model, optimizer, scheduler, resumed_from=str(checkpoint_in) if checkpoint_in else None)
    if checkpoint is not None:
        previous_lr = _restore_training_state(checkpoint, state)
        if previous_lr is not None and previous_lr != config.learning_rate:
            state.notes["learning_rate_previous"] = previous_lr
        state.notes.update(_optimizer_note(checkpoint, checkpoint_in, state_source))
    set_base_lr(scheduler, config.learning_rate)
    set_position(scheduler, epoch * config.iterations_per_epoch)
    return state


def with_training_state(checkpoint: dict[str, Any], path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """`checkpoint` with the optimiser, scheduler and RNG of the file that holds them for its weights.

    A per-epoch file (weights only) borrows them from last.pt or best.pt beside it when that file
    holds the same epoch with identical weights; returns the checkpoint and where its state came from.
    """
    path = Path(path)
    if checkpoint.get("optimizer_model_state_dict") or not path.name.startswith("epoch_"):
        return checkpoint, path
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        sibling = path.parent / name
        if stored_epoch(sibling) != checkpoint.get("epoch"):
            continue
        full = load_checkpoint(sibling)
        if full.get("optimizer_model_state_dict") and _same_weights(full, checkpoint):
            return {**checkpoint, **{key: full.get(key) for key in TRAINING_STATE_KEYS}}, sibling
    return checkpoint, path


def _same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    wa, wb = a["model_state_dict"], b["model_state_dict"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[key], wb[key]) for key in wa)


def _optimizer_note(checkpoint: dict[str, Any], path: str | os.PathLike, source: Path) -> dict[str, str]:
    """`optimizer_state` (restored / fresh) and, for a fresh start, why; the fresh case is logged."""
    if checkpoint.get("optimizer_model_state_dict"):
        return {"optimizer_state": "restored", "optimizer_state_from": str(source)}
    reason = (
        f"{path} holds no optimizer state (a per-epoch weights file whose run has no last.pt or best.pt of "
        "that epoch, or a checkpoint saved without it): the optimizer starts fresh, its learning-rate "
        "schedule placed at this epoch"
    )
    log.warning("resuming: %s", reason)
    return {"optimizer_state": "fresh", "optimizer_state_note": reason}


def _restore_training_state(checkpoint: dict[str, Any], state: TrainingState) -> float | None:
    """Load optimiser, scheduler and RNG; returns the base learning rate the checkpoint trained with."""
    previous_lr = None
    if checkpoint.get("optimizer_model_state_dict"):
        state.optimizer.load_state_dict(checkpoint["optimizer_model_state_dict"])
        group = state.optimizer.param_groups[0]
        previous_lr = float(group.get("initial_lr", group["lr"]))
    if checkpoint.get("scheduler"):
        state.scheduler.load_state_dict(checkpoint["scheduler"])
        previous_lr = float(state.scheduler.base_lrs[0])
    if checkpoint.get("rng"):
        restore_rng(checkpoint["rng"])
    return previous_lr


def checkpoint_state(
    config: Config, epoch: int, state: TrainingState, index_path: str | os.PathLike, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The full training state with the seed's keys first; plain Python/torch values only."""
    return {
        "epoch": epoch,
        "embedding_dimension": config.embedding_dimension,
        "batch_size_training": config.batch_size,
        "model_state_dict": unwrap_model(state.model).state_dict(),
        "model_architecture": config.model_architecture,
        "optimizer_model_state_dict": state.optimizer.state_dict(),
        "best_distance_threshold": None,
        "image_size": config.image_size,
        "normalize_mean": list(config.normalize_mean),
        "normalize_std": list(config.normalize_std),
        "scheduler": state.scheduler.state_dict(),
        "rng": capture_rng(),
        "config": config_to_dict(config),
        "index_path": str(index_path),
        "metrics": metrics,
    }
