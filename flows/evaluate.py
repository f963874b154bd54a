"""facenet-evaluate: evaluate one checkpoint on the configured evaluation sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from facenet_core.config import Config, load_config
from facenet_core.evaluate.crops import eval_set_raw_root, training_raw_root
from facenet_core.fileio import sha256_file
from facenet_core.train.checkpoints import load_checkpoint
from facenet_core.workspace import Workspace
from flows.data import crop_folder, prepare_eval_set
from flows.overrides import ConfigOverrides, overrides_dict
from flows.train import DEFAULT_PRESET
from tasks import evaluate as evaluate_tasks
from tasks.caching import results_dir


def training_crops(cfg: Config, ws: Workspace) -> dict[Path, tuple[Path, str]]:
    """The training crops of a raw folder an evaluation set also uses (LFW trained and evaluated on):
    cropped into the training folder, as the training flow does, so existing crops are reused."""
    raw = training_raw_root(cfg, ws)
    sets = [s for s in cfg.resolved_eval_sets() if not s.aligned and eval_set_raw_root(s, ws) == raw]
    return {raw: crop_folder(cfg, ws, raw, cfg.dataset.name)} if raw is not None and sets else {}


@flow(name="facenet-evaluate", log_prints=True)
def facenet_evaluate(
    checkpoint: str, preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None
) -> list[dict[str, Any]]:
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
    evaluate_epoch = evaluate_tasks.evaluate_epoch.with_options(result_storage=results_dir(ws.root))
    crops = training_crops(cfg, ws)
    results = []
    for eval_set, fingerprint in (prepare_eval_set(cfg, ws, s, crops) for s in cfg.resolved_eval_sets()):
        results.append(
            evaluate_epoch(
                str(ws.root),
                cfg.model_dump(mode="json"),
                epoch,
                str(path),
                sha256_file(path),
                eval_set,
                fingerprint,
                str(out_dir),
            )
        )
    return results
