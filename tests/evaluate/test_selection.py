"""The selection policy: selection set, comparable evaluations, best epoch, what last.pt/best.pt
record, the registered evaluation and the champion/challenger rule."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from facenet_core.config.schema import Config, EvalSet
from facenet_core.evaluate.selection import (
    CHALLENGER,
    CHAMPION,
    Evaluation,
    VersionScore,
    alias_decision,
    best_of,
    comparable_evaluations,
    promote,
    record_best,
    registered_evaluations,
    selection_eval_set,
    settings_tag,
)
from facenet_core.train.checkpoints import epoch_path, save_checkpoint
from facenet_core.workspace import RunLayout

LFW = EvalSet(name="lfw", root="/data/lfw", pairs="/data/pairs.txt")
VIEW1 = EvalSet(name="view1", root="/data/lfw", pairs="/data/dev.txt", protocol="train_test", train_pairs="/t.txt")


def config(**fields) -> Config:
    return Config(eval_sets=[LFW, VIEW1], **fields)


def evaluation(epoch: int, accuracy: float, eval_set: str = "lfw", checkpoint_dir: Path = Path("ck"), **metrics):
    values = {"accuracy": accuracy, "roc_auc": 0.5, "best_distance_threshold": 1.0 + epoch / 10, **metrics}
    return Evaluation(epoch, eval_set, "f" * 64, str(epoch_path(checkpoint_dir, epoch)), values)


def tiny_state(epoch: int) -> dict:
    return {"epoch": epoch, "model_state_dict": {"w": torch.zeros(1)}, "best_distance_threshold": None}


def run_with_epochs(tmp_path: Path, epochs: int) -> RunLayout:
    """A run folder whose epochs 0..epochs-1 are trained, last.pt being the newest."""
    layout = RunLayout(tmp_path / "run")
    for epoch in range(epochs):
        save_checkpoint(layout.epoch_checkpoint(epoch), tiny_state(epoch))
    save_checkpoint(layout.last, {**tiny_state(epochs - 1), "optimizer_model_state_dict": {"state": {}}})
    return layout


def stored(path: Path, key: str):
    return torch.load(path, weights_only=True)[key]


def test_selection_set_is_the_named_one_else_the_first():
    assert selection_eval_set(config()) == LFW
    assert selection_eval_set(config(selection_eval_set="view1")) == VIEW1
    assert selection_eval_set(Config(lfw="/data/lfw-faces")).name == "lfw"  # the seed's --lfw option
    with pytest.raises(ValueError, match="no evaluation set"):
        selection_eval_set(Config())


def test_best_epoch_by_the_metric_ties_to_the_earlier_epoch():
    tied = [evaluation(0, 0.7), evaluation(1, 0.9), evaluation(2, 0.9)]
    assert best_of(tied, "accuracy").epoch == 1
    by_auc = [evaluation(0, 0.9, roc_auc=0.6), evaluation(1, 0.8, roc_auc=0.7)]
    assert best_of(by_auc, "accuracy").epoch == 0 and best_of(by_auc, "roc_auc").epoch == 1
    undefined = [evaluation(0, math.nan), evaluation(1, 0.1), evaluation(2, 0.5, tar_at_far=0.2)]
    assert best_of(undefined, "accuracy").epoch == 2  # NaN never wins
    assert best_of(undefined, "tar_at_far").epoch == 2  # nor a missing value
    with pytest.raises(ValueError, match="no evaluation"):
        best_of([], "accuracy")


def test_settings_change_with_evaluation_parameters_only():
    tag = settings_tag(config(), LFW, "f" * 64)
    assert settings_tag(config(learning_rate=0.01, eval_batch_size=7, num_workers=0), LFW, "f" * 64) == tag
    assert settings_tag(config(flip_tta=True), LFW, "f" * 64) != tag
    assert settings_tag(config(distance_metric="cosine"), LFW, "f" * 64) != tag
    assert settings_tag(config(), LFW, "e" * 64) != tag  # the set's images or pairs changed
    assert settings_tag(config(), LFW.model_copy(update={"people_file": "/p.txt"}), "f" * 64) != tag


def test_only_rows_of_the_same_set_and_settings_compete(tmp_path):
    table = pd.DataFrame(
        [
            {"epoch": 0, "set": "lfw", "settings": "old", "accuracy": 0.95, "best_distance_threshold": 1.0},
            {"epoch": 2, "set": "lfw", "settings": "new", "accuracy": 0.70, "best_distance_threshold": 1.2},
            {"epoch": 1, "set": "lfw", "settings": "new", "accuracy": 0.80, "best_distance_threshold": 1.1},
            {"epoch": 1, "set": "view1", "settings": "new", "accuracy": 0.99, "best_distance_threshold": 0.9},
        ]
    )
    table["missing_train_pairs"] = [None, None, None, 0]  # a column only train_test rows fill
    layout = RunLayout(tmp_path / "run")
    new = evaluation(2, 0.70, checkpoint_dir=layout.checkpoints)
    history = comparable_evaluations(table, new, "new")
    assert [e.epoch for e in history] == [1, 2]
    assert history[0].checkpoint == str(layout.epoch_checkpoint(1)) and history[0].eval_set_fingerprint == "f" * 64
    assert history[0].metrics == {"accuracy": 0.80, "best_distance_threshold": 1.1}  # no NaN left in
    assert best_of(history, "accuracy").epoch == 1  # epoch 0's better row was measured otherwise


def test_record_best_writes_the_threshold_and_copies_the_best(tmp_path):
    layout = run_with_epochs(tmp_path, 3)
    cfg = config()
    first = evaluation(0, 0.8, checkpoint_dir=layout.checkpoints)
    assert record_best(cfg, first, [], layout) == first
    assert stored(layout.best, "epoch") == 0 and stored(layout.best, "best_distance_threshold") == 1.0
    assert stored(layout.last, "best_distance_threshold") is None  # last.pt holds epoch 2

    tie = evaluation(1, 0.8, checkpoint_dir=layout.checkpoints)
    assert record_best(cfg, tie, [first], layout).epoch == 0
    assert stored(layout.best, "epoch") == 0

    newest = evaluation(2, 0.9, checkpoint_dir=layout.checkpoints)
    assert record_best(cfg, newest, [first, tie, newest], layout) == newest
    assert stored(layout.best, "epoch") == 2 and stored(layout.best, "best_distance_threshold") == 1.2
    assert stored(layout.last, "best_distance_threshold") == 1.2
    assert "optimizer_model_state_dict" in torch.load(layout.best, weights_only=True)  # the full state


def test_record_best_leaves_other_sets_and_outside_checkpoints_alone(tmp_path):
    layout = run_with_epochs(tmp_path, 1)
    on_view1 = evaluation(0, 0.99, "view1", checkpoint_dir=layout.checkpoints)
    assert record_best(config(), on_view1, [], layout) is None
    elsewhere = evaluation(0, 0.99, checkpoint_dir=tmp_path / "elsewhere")  # facenet-evaluate's checkpoint
    assert record_best(config(), elsewhere, [], layout) is None
    assert not layout.best.exists()
    assert record_best(config(selection_eval_set="view1"), on_view1, [], layout) == on_view1
    assert stored(layout.best, "epoch") == 0


def test_registered_evaluation_is_the_best_on_the_selection_set_with_its_epoch_on_the_others():
    evaluations = [
        evaluation(0, 0.8),
        evaluation(0, 0.6, "view1"),
        evaluation(1, 0.7),  # epoch 2 was pruned by retention and skipped: not listed
        evaluation(1, 0.9, "view1"),
        evaluation(3, 0.8),
    ]
    chosen = registered_evaluations(config(), evaluations)
    assert (chosen.best.epoch, chosen.best.eval_set) == (0, "lfw")
    assert [(e.epoch, e.eval_set) for e in chosen.others] == [(0, "view1")]
    by_view1 = registered_evaluations(config(selection_eval_set="view1"), evaluations)
    assert (by_view1.best.epoch, by_view1.best.eval_set) == (1, "view1")
    assert [(e.epoch, e.eval_set) for e in by_view1.others] == [(1, "lfw")]
    with pytest.raises(ValueError, match=r"no evaluation on selection set 'lfw'; evaluated: \['view1'\]"):
        registered_evaluations(config(), [evaluation(0, 0.5, "view1")])


def test_promote_makes_best_pt_the_registered_epoch_unless_its_file_is_gone(tmp_path):
    layout = run_with_epochs(tmp_path, 3)
    save_checkpoint(layout.best, tiny_state(2))
    assert promote(evaluation(1, 0.9, checkpoint_dir=layout.checkpoints))
    assert stored(layout.best, "epoch") == 1 and stored(layout.best, "best_distance_threshold") == 1.1
    assert not promote(evaluation(1, 0.9, checkpoint_dir=layout.checkpoints))  # already there
    layout.epoch_checkpoint(0).unlink()  # deleted by checkpoint_retention
    assert not promote(evaluation(0, 0.95, checkpoint_dir=layout.checkpoints))
    assert stored(layout.best, "epoch") == 1


def version(number: str, metric: float | None, fingerprint: str = "a", protocol: str = "kfold10") -> VersionScore:
    return VersionScore(version=number, eval_set_fingerprint=fingerprint, protocol=protocol, metric=metric)


def test_champion_moves_only_to_a_better_version_on_the_same_set():
    first = alias_decision(version("1", 0.8), None, "accuracy")
    assert (first.alias, first.previous_champion) == (CHAMPION, None)
    better = alias_decision(version("2", 0.85), version("1", 0.8), "accuracy")
    assert (better.alias, better.reason, better.previous_champion) == (CHAMPION, "accuracy beats champion v1", "1")
    tie = alias_decision(version("2", 0.8), version("1", 0.8), "accuracy")
    assert (tie.alias, tie.reason) == (CHALLENGER, "accuracy does not beat champion v1")
    assert alias_decision(version("2", 0.7), version("1", 0.8), "accuracy").alias == CHALLENGER


def test_versions_of_other_sets_or_without_metrics_never_take_champion():
    other_set = alias_decision(version("2", 0.99, fingerprint="b"), version("1", 0.5), "accuracy")
    assert other_set.alias == CHALLENGER and "different set or protocol" in other_set.reason
    other_protocol = alias_decision(version("2", 0.99, protocol="train_test"), version("1", 0.5), "accuracy")
    assert other_protocol.alias == CHALLENGER
    legacy = alias_decision(version("2", 0.99), version("1", None), "roc_auc")
    assert (legacy.alias, legacy.reason) == (CHALLENGER, "champion v1 has no roc_auc to compare")
    unmeasured = alias_decision(version("2", None), version("1", 0.5), "accuracy")
    assert unmeasured.alias == CHALLENGER
