"""Optimisers with the seed's settings and the learning-rate schedules."""

import math

import pytest
import torch

from facenet_core.config import LRSchedule
from facenet_core.train.optim import lr_factor, make_optimizer, make_scheduler, set_base_lr, set_position


def _params():
    return [torch.nn.Parameter(torch.zeros(2))]


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        (
            "adagrad",
            torch.optim.Adagrad,
            {"lr": 0.075, "lr_decay": 0, "initial_accumulator_value": 0.1, "eps": 1e-10, "weight_decay": 1e-5},
        ),
        (
            "sgd",
            torch.optim.SGD,
            {"lr": 0.075, "momentum": 0.9, "dampening": 0, "nesterov": False, "weight_decay": 1e-5},
        ),
        (
            "rmsprop",
            torch.optim.RMSprop,
            {"lr": 0.075, "alpha": 0.99, "eps": 1e-8, "momentum": 0, "centered": False, "weight_decay": 1e-5},
        ),
        (
            "adam",
            torch.optim.Adam,
            {"lr": 0.075, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "weight_decay": 1e-5},
        ),
    ],
)
def test_optimizers_use_the_seed_settings(name, cls, expected):
    optimizer = make_optimizer(name, _params(), 0.075)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert {key: group[key] for key in expected} == expected


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optimizer='lamb'"):
        make_optimizer("lamb", _params(), 0.1)


def test_step_schedule_drops_at_milestones_like_the_seed_readme():
    schedule = LRSchedule(type="step", milestones=[85], gamma=0.01 / 0.075)
    assert lr_factor(schedule, 84 * 10 + 9, 10, 150, 0.075) == 1.0
    assert 0.075 * lr_factor(schedule, 85 * 10, 10, 150, 0.075) == pytest.approx(0.01)


def test_cosine_runs_from_one_to_the_floor():
    schedule = LRSchedule(type="cosine", min_lr=0.001)
    assert lr_factor(schedule, 0, 10, 4, 0.1) == pytest.approx(1.0)
    assert lr_factor(schedule, 20, 10, 4, 0.1) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(schedule, 40, 10, 4, 0.1) == pytest.approx(0.01)


def test_warmup_ramps_linearly_from_above_zero():
    schedule = LRSchedule(type="constant", warmup_epochs=2)
    factors = [lr_factor(schedule, step, 5, 10, 0.1) for step in range(12)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[4] == pytest.approx(0.5)
    assert factors[9:] == [1.0, 1.0, 1.0]
    assert all(b > a for a, b in zip(factors[:10], factors[1:10], strict=False))


def test_cosine_after_warmup_starts_at_one():
    schedule = LRSchedule(type="cosine", warmup_epochs=1)
    assert lr_factor(schedule, 10, 10, 5, 0.1) == pytest.approx(1.0)
    assert lr_factor(schedule, 30, 10, 5, 0.1) == pytest.approx(0.5)


def test_scheduler_steps_per_optimiser_step_and_repositions():
    optimizer = make_optimizer("sgd", _params(), 0.1)
    scheduler = make_scheduler(optimizer, LRSchedule(type="step", milestones=[1], gamma=0.5), 4, 3)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    set_position(scheduler, 0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    set_base_lr(scheduler, 0.02)
    set_position(scheduler, 8)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert scheduler.get_last_lr() == [pytest.approx(0.01)]


def test_scheduler_state_is_plain_and_restores_position():
    optimizer = make_optimizer("adagrad", _params(), 0.075)
    scheduler = make_scheduler(optimizer, LRSchedule(type="cosine"), 2, 3)
    set_position(scheduler, 3)
    state = scheduler.state_dict()
    fresh = make_scheduler(make_optimizer("adagrad", _params(), 0.075), LRSchedule(type="cosine"), 2, 3)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 3
    set_position(fresh, fresh.last_epoch)
    assert fresh.optimizer.param_groups[0]["lr"] == pytest.approx(0.075 * 0.5 * (1 + math.cos(math.pi * 0.5)))
