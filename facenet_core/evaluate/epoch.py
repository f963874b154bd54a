"""One epoch of a run evaluated on one set: load its checkpoint, evaluate, write the report, keep the
run's best checkpoint current (`selection.record_best`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from facenet_core.config.schema import Config, EvalSet
from facenet_core.devices import resolve_device
from facenet_core.evaluate import report, selection
from facenet_core.evaluate.report import ReportPaths
from facenet_core.evaluate.selection import Evaluation
from facenet_core.train.checkpoints import load_model_from_checkpoint, pruned_by_retention
from facenet_core.workspace import RunLayout


@dataclass(frozen=True)
class EpochEvaluation:
    """What evaluating one checkpoint on one set gave: the evaluation (no metrics when `skipped` says
    why it could not run), its report files, the comparable rows of the run's metrics table up to
    now (`history`, by epoch), and the best epoch so far when the set is the selection set."""

    evaluation: Evaluation
    reports: ReportPaths | None = None
    history: tuple[Mapping[str, Any], ...] = ()
    best_epoch: int | None = None
    skipped: str | None = None


def evaluate_checkpoint(
    config: Config,
    *,
    epoch: int,
    checkpoint: str | os.PathLike,
    eval_set: EvalSet,
    eval_set_fingerprint: str,
    layout: RunLayout,
) -> EpochEvaluation:
    """Evaluate `checkpoint` (epoch `epoch`) on `eval_set` with the config's evaluation parameters and
    write the epoch's report in the run's reports/ (see `report.write_epoch_report`).

    An epoch whose weights `checkpoint_retention` deleted cannot be evaluated again (after an
    evaluation parameter changed): it is returned `skipped`, nothing written.
    """
    evaluation = Evaluation(
        epoch=epoch, eval_set=eval_set.name, eval_set_fingerprint=eval_set_fingerprint, checkpoint=str(checkpoint)
    )
    if pruned_by_retention(checkpoint):
        reason = f"weights of epoch {epoch} were deleted by checkpoint_retention ({checkpoint})"
        return EpochEvaluation(evaluation, skipped=reason)
    device = str(resolve_device(config.device))
    model, _ = load_model_from_checkpoint(checkpoint, device=device)
    result = report.evaluate_model(
        model,
        eval_set,
        image_size=config.image_size,
        mean=config.normalize_mean,
        std=config.normalize_std,
        batch_size=config.eval_batch_size,
        device=device,
        distance_metric=config.distance_metric,
        flip_tta=config.flip_tta,
        num_workers=config.num_workers,
    )
    report_dir = layout.reports
    settings = selection.settings_tag(config, eval_set, eval_set_fingerprint)
    written = report.write_epoch_report(report_dir, epoch, eval_set.name, result, settings)
    evaluation = replace(evaluation, metrics={k: float(v) for k, v in result.metrics.items()})
    table = report.read_metrics_table(report_dir)
    history = selection.comparable_evaluations(table, evaluation, settings)
    best = selection.record_best(config, evaluation, history, layout)
    return EpochEvaluation(
        evaluation,
        reports=written,
        history=tuple(selection.comparable_history(table, eval_set.name, settings).to_dict("records")),
        best_epoch=None if best is None else best.epoch,
    )
