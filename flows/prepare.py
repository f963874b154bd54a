"""facenet-prepare-data: download, crop and manifest the training data and the evaluation sets."""

from __future__ import annotations

from typing import Any

from prefect import flow

from facenet_core.config import load_config
from facenet_core.workspace import Workspace
from flows.data import DataPrep, eval_set_images, training_manifest
from flows.overrides import ConfigOverrides, overrides_dict
from flows.train import DEFAULT_PRESET


@flow(name="facenet-prepare-data", log_prints=True)
def facenet_prepare_data(preset: str = DEFAULT_PRESET, overrides: ConfigOverrides | None = None) -> dict[str, Any]:
    """Everything before training, cached: a later facenet-train finds it all Cached."""
    cfg = load_config(preset, overrides_dict(overrides))
    ws = Workspace.from_config(cfg).ensure()
    cfg = cfg.model_copy(update={"workspace": str(ws.root)})
    prep = DataPrep.of(cfg, ws)
    data = training_manifest(prep)
    eval_sets = [eval_set_images(prep, s) for s in cfg.resolved_eval_sets()]
    return {
        "manifest": str(data.manifest.path),
        "manifest_fingerprint": data.fingerprint,
        "eval_sets": {s.name: {"root": s.root, "fingerprint": fp} for s, fp in eval_sets},
    }
