"""The seed's optimisers with its exact settings, and the learning-rate schedules it lacked."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from facenet_core.config.schema import LRSchedule

WEIGHT_DECAY = 1e-5


def make_optimizer(name: str, parameters: Iterable[torch.nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    """sgd / adagrad / rmsprop / adam configured exactly as the seed's train_triplet_loss.py."""
    if name == "sgd":
        return torch.optim.SGD(
            parameters, lr=learning_rate, momentum=0.9, dampening=0, nesterov=False, weight_decay=WEIGHT_DECAY
        )
    if name == "adagrad":
        return torch.optim.Adagrad(
            parameters,
            lr=learning_rate,
            lr_decay=0,
            initial_accumulator_value=0.1,
            eps=1e-10,
            weight_decay=WEIGHT_DECAY,
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            parameters, lr=learning_rate, alpha=0.99, eps=1e-8, momentum=0, centered=False, weight_decay=WEIGHT_DECAY
        )
    if name == "adam":
        return torch.optim.Adam(
            parameters, lr=learning_rate, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, weight_decay=WEIGHT_DECAY
        )
    raise ValueError(f"optimizer={name!r} is not one of sgd, adagrad, rmsprop, adam")


def lr_factor(schedule: LRSchedule, step: int, steps_per_epoch: int, total_epochs: int, base_lr: float) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based, over all epochs).

    constant: 1; step: gamma ** (epoch milestones passed); cosine: from 1 after the warm-up down to
    min_lr / base_lr at `total_epochs`. A warm-up ramps linearly over its steps, never starting at 0.
    """
    progress = step / steps_per_epoch
    if schedule.type == "step":
        factor = schedule.gamma ** sum(progress >= m for m in schedule.milestones)
    elif schedule.type == "cosine":
        span = max(total_epochs - schedule.warmup_epochs, 1)
        t = min(max(progress - schedule.warmup_epochs, 0.0) / span, 1.0)
        floor = min(schedule.min_lr / base_lr, 1.0)
        factor = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        factor = 1.0
    warmup_steps = schedule.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: LRSchedule, steps_per_epoch: int, total_epochs: int
) -> LambdaLR:
    """A per-step LambdaLR over `lr_factor`; its position (last_epoch) counts optimiser steps."""

    def factor(step: int) -> float:
        base_lr = optimizer.param_groups[0]["initial_lr"]
        return lr_factor(schedule, step, steps_per_epoch, total_epochs, base_lr)

    return LambdaLR(optimizer, factor)


def set_position(scheduler: LambdaLR, step: int) -> None:
    """Move the schedule to global step `step` and apply its learning rate."""
    scheduler.last_epoch = step
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def set_base_lr(scheduler: LambdaLR, learning_rate: float) -> None:
    """Replace the base learning rate (a new --learning_rate on resume) and re-apply the schedule."""
    scheduler.base_lrs = [learning_rate for _ in scheduler.base_lrs]
    for group in scheduler.optimizer.param_groups:
        group["initial_lr"] = learning_rate
    set_position(scheduler, scheduler.last_epoch)
