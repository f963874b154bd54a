"""facenet-prepare-data: download, crop and manifest the training data and the evaluation sets."""

from __future__ import annotations

from typing import Any

from prefect import flow

from facenet_core.config import load_config
from facenet_core.workspace import Workspace
from flows.data import prepare_eval_set, prepare_training_data
from flows.overrides import ConfigOverrides, overrides_dict
from flows.train import DEFAULT_PRESET


@flow(name="facenet-prepare-data", log_prints=True)
def facenet_prepare_data(preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None) -> dict[str, Any]:
    """Everything before training, cached: a later facenet-train finds it all Cached."""
    cfg = load_config(preset, overrides_dict(overrides))
    ws = Workspace.from_config(cfg).ensure()
    cfg = cfg.model_copy(update={"workspace": str(ws.root)})
    data = prepare_training_data(cfg, ws)
    crops = dict(data.crops)
    eval_sets = [prepare_eval_set(cfg, ws, s, crops) for s in cfg.resolved_eval_sets()]
    return {
        "manifest": data.manifest,
        "manifest_fingerprint": data.fingerprint,
        "eval_sets": {s["name"]: {"root": s["root"], "fingerprint": fp} for s, fp in eval_sets},
    }
