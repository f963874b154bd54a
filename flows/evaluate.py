"""facenet-evaluate: evaluate one checkpoint on the configured evaluation sets."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from facenet_core.config import load_config
from facenet_core.evaluate.crops import eval_set_raw_root, training_raw_root
from facenet_core.evaluate.epoch import EpochEvaluation
from facenet_core.fileio import sha256_file
from facenet_core.train.checkpoints import load_checkpoint
from facenet_core.workspace import RunLayout, Workspace
from flows.data import DataPrep, crop_folder, eval_set_images
from flows.overrides import ConfigOverrides, overrides_dict
from flows.train import DEFAULT_PRESET
from tasks import evaluate as evaluate_tasks


def crop_training_folder(prep: DataPrep) -> None:
    """Crop the raw training folder when an evaluation set also uses it (LFW trained and evaluated on)
    into the training folder's crops, as the training flow does, so existing crops are reused."""
    cfg, ws = prep.config, prep.workspace
    raw = training_raw_root(cfg, ws)
    sets = [s for s in cfg.resolved_eval_sets() if not s.aligned and eval_set_raw_root(s, ws) == raw]
    if raw is not None and sets:
        prep.crops[raw] = crop_folder(prep, raw, cfg.dataset.name)


@flow(name="facenet-evaluate", log_prints=True)
def facenet_evaluate(
    checkpoint: str, preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None
) -> list[EpochEvaluation]:
    """Metrics and plots of `checkpoint` (ours or the seed's) on every eval set, under its folder.

    Raw evaluation images are MTCNN-cropped with the preset's crop settings (the training crops
    reused when an eval set is the training folder); sets marked `aligned` (or --lfw with
    lfw_cropped) are embedded as they are."""
    cfg = load_config(preset, overrides_dict(overrides))
    ws = Workspace.from_config(cfg).ensure()
    cfg = cfg.model_copy(update={"workspace": str(ws.root)})
    path = Path(checkpoint).expanduser().resolve()
    epoch = int(load_checkpoint(path).get("epoch", 0))
    out_dir = path.parent / f"evaluation-{path.stem}"
    evaluate_epoch = evaluate_tasks.evaluate_epoch.with_options(result_storage=ws.prefect_results)
    prep = DataPrep.of(cfg, ws)
    crop_training_folder(prep)
    results = []
    for eval_set, fingerprint in (eval_set_images(prep, s) for s in cfg.resolved_eval_sets()):
        results.append(
            evaluate_epoch(
                workspace=ws,
                config=cfg,
                epoch=epoch,
                checkpoint=path,
                checkpoint_sha256=sha256_file(path),
                eval_set=eval_set,
                eval_set_fingerprint=fingerprint,
                layout=RunLayout(out_dir),
            )
        )
    return results
