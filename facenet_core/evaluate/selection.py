"""The selection policy: which evaluations pick a run's best epoch, what its checkpoints record of it,
which evaluation registers the model, and which registered version is the champion.

- The selection set is `selection_eval_set`, else the first evaluation set.
- Evaluations compare only under the same settings (the set, its fingerprint and the evaluation
  parameters, as `settings_tag`): after an evaluation parameter changes, the rows of the old
  settings stay in the metrics table but never compete with the new ones.
- The best epoch has the highest `selection_metric`; ties go to the earlier epoch; a missing or
  NaN value never beats a number.
- Checkpoints: last.pt holds its epoch's evaluated threshold, best.pt a copy of the best epoch's
  state (`checkpoints.record_evaluation` writes both files).
- Registry: a new version takes `champion` only when it was evaluated on the same set (same
  eval-set fingerprint and protocol) as the current champion and beats it on the selection metric
  (a tie keeps the champion); otherwise it is the `challenger`. Versions evaluated on different
  sets are never compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from facenet_core.config.schema import Config, EvalSet
from facenet_core.config.stages import stage_values
from facenet_core.fileio import sha256_json
from facenet_core.train.checkpoints import record_evaluation, stored_epoch
from facenet_core.workspace import RunLayout

CHAMPION = "champion"
CHALLENGER = "challenger"
Alias = Literal["champion", "challenger"]
TABLE_KEYS = ("epoch", "set", "settings")  # the metrics table's columns that are no metric
THRESHOLD = "best_distance_threshold"


@dataclass(frozen=True)
class Evaluation:
    """One epoch's metrics on one evaluation set, and the weights they were measured on."""

    epoch: int
    eval_set: str
    eval_set_fingerprint: str
    checkpoint: str
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredEvaluations:
    """The evaluation that registers the model (`best`, on the selection set) and the same epoch's
    evaluations on the other sets (`others`), linked to the model too."""

    best: Evaluation
    others: tuple[Evaluation, ...] = ()


@dataclass(frozen=True)
class VersionScore:
    """A registered version as the alias rules see it: the set it was evaluated on (fingerprint and
    protocol, None when untagged) and its selection metric (None when its model has none linked)."""

    version: str
    eval_set_fingerprint: str | None
    protocol: str | None
    metric: float | None


@dataclass(frozen=True)
class AliasDecision:
    """The alias a new version gets, why, and the champion it was compared with (None: first one)."""

    alias: Alias
    reason: str
    previous_champion: str | None


def selection_eval_set(config: Config) -> EvalSet:
    """The eval set that picks the best epoch: `selection_eval_set`, else the first one."""
    sets = config.resolved_eval_sets()
    if not sets:
        raise ValueError("no evaluation set configured (eval_sets or --lfw): a model is registered by its eval metrics")
    if config.selection_eval_set is None:
        return sets[0]
    return next(s for s in sets if s.name == config.selection_eval_set)


def evaluation_settings(config: Config, eval_set: EvalSet, eval_set_fingerprint: str) -> dict[str, Any]:
    """What an evaluation's numbers depend on besides the weights: the set, its fingerprint and the
    evaluation parameters (JSON-ready; the evaluate stage's cache key is this plus checkpoint and epoch)."""
    return {
        "eval_set": eval_set.model_dump(mode="json"),
        "eval_set_fingerprint": eval_set_fingerprint,
        "params": stage_values(config, "evaluate"),
    }


def settings_tag(config: Config, eval_set: EvalSet, eval_set_fingerprint: str) -> str:
    """The short tag of `evaluation_settings` that marks each metrics-table row: equal tags compare."""
    return sha256_json(evaluation_settings(config, eval_set, eval_set_fingerprint))[:12]


def comparable_history(table: pd.DataFrame, set_name: str, settings: str) -> pd.DataFrame:
    """The metrics-table rows of one set evaluated under the same settings tag, by epoch."""
    return table[(table["set"] == set_name) & (table["settings"] == settings)].sort_values("epoch")


def comparable_evaluations(table: pd.DataFrame, evaluation: Evaluation, settings: str) -> list[Evaluation]:
    """The rows of a run's metrics table that compete with `evaluation` (same set, same `settings`
    tag), as evaluations of the epoch files beside its checkpoint, by epoch; missing metrics left out."""
    run = RunLayout.of_checkpoint(evaluation.checkpoint)
    rows = comparable_history(table, evaluation.eval_set, settings)
    return [
        Evaluation(
            epoch=int(row["epoch"]),
            eval_set=evaluation.eval_set,
            eval_set_fingerprint=evaluation.eval_set_fingerprint,
            checkpoint=str(run.epoch_checkpoint(int(row["epoch"]))),
            metrics={k: float(v) for k, v in row.items() if k not in TABLE_KEYS and pd.notna(v)},
        )
        for row in rows.to_dict("records")
    ]


def _rank(evaluation: Evaluation, metric: str) -> tuple[float, int]:
    value = evaluation.metrics.get(metric, math.nan)
    return (-math.inf if math.isnan(value) else value), -evaluation.epoch


def best_of(evaluations: Sequence[Evaluation], metric: str) -> Evaluation:
    """The evaluation with the highest `metric`; ties: the earliest epoch; missing or NaN ranks last."""
    if not evaluations:
        raise ValueError(f"no evaluation to choose the best {metric} from")
    return max(evaluations, key=lambda e: _rank(e, metric))


def record_best(
    config: Config, evaluation: Evaluation, history: Sequence[Evaluation], layout: RunLayout
) -> Evaluation | None:
    """Keep the run's checkpoints current after `evaluation`: last.pt gets its threshold, best.pt a
    copy of its state when it is the best of `history` (the comparable evaluations; `evaluation`
    counts whether listed or not). Returns the best so far; None, writing nothing, for an
    evaluation on another set than the selection set or of a checkpoint outside the run's
    checkpoints/ (facenet-evaluate's)."""
    in_run = Path(evaluation.checkpoint).parent == layout.checkpoints
    if evaluation.eval_set != selection_eval_set(config).name or not in_run:
        return None
    competing = [e for e in history if e.epoch != evaluation.epoch] + [evaluation]
    best = best_of(competing, config.selection_metric)
    is_best = best.epoch == evaluation.epoch
    record_evaluation(layout.checkpoints, evaluation.epoch, evaluation.metrics[THRESHOLD], is_best)
    return best


def registered_evaluations(config: Config, evaluations: Sequence[Evaluation]) -> RegisteredEvaluations:
    """The best evaluation on the selection set, and the same epoch's evaluations on the other sets."""
    selection = selection_eval_set(config).name
    candidates = [e for e in evaluations if e.eval_set == selection]
    if not candidates:
        evaluated = sorted({e.eval_set for e in evaluations})
        raise ValueError(f"no evaluation on selection set {selection!r}; evaluated: {evaluated}")
    best = best_of(candidates, config.selection_metric)
    others = tuple(e for e in evaluations if e.epoch == best.epoch and e.eval_set != best.eval_set)
    return RegisteredEvaluations(best=best, others=others)


def promote(evaluation: Evaluation) -> bool:
    """Make the run's best.pt hold `evaluation`'s epoch with its threshold, copied from its epoch file
    (evaluations that came back Cached never ran `record_best`); True when best.pt was written, False
    when it holds that epoch already or the epoch file is gone (deleted by retention)."""
    run = RunLayout.of_checkpoint(evaluation.checkpoint)
    if not Path(evaluation.checkpoint).is_file() or stored_epoch(run.best) == evaluation.epoch:
        return False
    record_evaluation(run.checkpoints, evaluation.epoch, evaluation.metrics[THRESHOLD], is_best=True)
    return True


def comparable(new: VersionScore, champion: VersionScore) -> bool:
    """Evaluated on the same set: same eval-set fingerprint and protocol."""
    return new.eval_set_fingerprint == champion.eval_set_fingerprint and new.protocol == champion.protocol


def alias_decision(new: VersionScore, champion: VersionScore | None, metric: str) -> AliasDecision:
    """The alias of a newly registered version against the current champion (module docstring)."""
    if champion is None:
        return AliasDecision(CHAMPION, "first version with an evaluation", None)
    held_by = f"champion v{champion.version}"
    if not comparable(new, champion):
        return AliasDecision(CHALLENGER, f"evaluated on a different set or protocol than {held_by}", champion.version)
    if champion.metric is None:
        return AliasDecision(CHALLENGER, f"{held_by} has no {metric} to compare", champion.version)
    if new.metric is not None and new.metric > champion.metric:
        return AliasDecision(CHAMPION, f"{metric} beats {held_by}", champion.version)
    return AliasDecision(CHALLENGER, f"{metric} does not beat {held_by}", champion.version)
