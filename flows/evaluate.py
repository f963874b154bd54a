"""facenet-evaluate: evaluate one checkpoint on the configured evaluation sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from facenet_core.config import load_config
from facenet_core.fileio import sha256_file
from facenet_core.train.checkpoints import load_checkpoint
from facenet_core.workspace import Workspace
from flows.data import prepare_eval_set
from flows.overrides import ConfigOverrides, overrides_dict
from flows.train import DEFAULT_PRESET
from tasks import evaluate as evaluate_tasks
from tasks.caching import results_dir


@flow(name="facenet-evaluate", log_prints=True)
def facenet_evaluate(
    checkpoint: str, preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None
) -> list[dict[str, Any]]:
    """Metrics and plots of `checkpoint` (ours or the seed's) on every eval set, under its folder."""
    cfg = load_config(preset, overrides_dict(overrides))
    ws = Workspace.from_config(cfg).ensure()
    cfg = cfg.model_copy(update={"workspace": str(ws.root)})
    path = Path(checkpoint).expanduser().resolve()
    epoch = int(load_checkpoint(path).get("epoch", 0))
    out_dir = path.parent / f"evaluation-{path.stem}"
    evaluate_epoch = evaluate_tasks.evaluate_epoch.with_options(result_storage=results_dir(ws.root))
    crops: dict = {}
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
