"""Evaluation images through the crop stage, cropped as the training images were.

A model trained on MTCNN crops must be evaluated on MTCNN crops of the same size and margin (the
seed evaluated on MTCNN-cropped LFW), one trained on aligned crops (`crop: aligned`) on faces
aligned the same way. The crops are cached in the workspace's cropped/ folder under
the name the training flow gives them, so LFW cropped for training is reused, not cropped again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from facenet_core.config import Config, EvalSet
from facenet_core.detect.options import CropOptions
from facenet_core.safepath import safe_child
from facenet_core.workspace import Workspace


def _resolved(base: Path | None, value: str) -> Path:
    path = Path(value).expanduser()
    return (base / path if base is not None and not path.is_absolute() else path).resolve()


def training_raw_root(config: Config, workspace: Workspace) -> Path | None:
    """The raw identity folders the training flow crops (None when it trained on given crops)."""
    if config.cropped_root:
        return None
    dataset = config.dataset
    if dataset.path and dataset.format == "folders":
        return _resolved(None, dataset.path)
    if dataset.catalogue:
        from facenet_core.ingest.catalogue import resolve_dataset

        try:
            dataset = resolve_dataset(dataset)
        except ValueError:  # an entry this machine's catalogue lacks: the training folder is unknown
            return None
    folder = workspace.raw / dataset.name
    return (folder / dataset.images_subdir if dataset.images_subdir else folder).resolve()


def eval_set_raw_root(eval_set: EvalSet, workspace: Workspace) -> Path:
    """An evaluation set's image folder (relative to raw/<dataset> when it names a dataset)."""
    return _resolved(workspace.raw / eval_set.dataset if eval_set.dataset else None, eval_set.root)


def crop_folder_name(config: Config, workspace: Workspace, raw_root: Path) -> str:
    """Name under cropped/ the training flow uses for `raw_root`'s crops: the training dataset's name
    for its own images, `eval-<set>` for an evaluation set of the config, else `eval-<folder name>`;
    tagged with the output options that differ from the reference's (CropOptions.folder_name)."""
    raw_root = raw_root.resolve()
    if training_raw_root(config, workspace) == raw_root:
        base = config.dataset.name
    else:
        named = [s.name for s in config.resolved_eval_sets() if eval_set_raw_root(s, workspace) == raw_root]
        base = f"eval-{named[0] if named else raw_root.name}"
    return CropOptions.from_config(config).folder_name(base)


def crop_for_evaluation(
    raw_root: str | Path, config: Config, workspace: Workspace, device: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Crops of `raw_root` by the config's method (mtcnn or aligned) in workspace/cropped/<name>
    (finished images are kept, new ones cropped; a training crop of the same folder in progress is
    waited for); returns the crop folder and the crop stage's counts."""
    from facenet_core.detect.parallel import crop_tree

    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise FileNotFoundError(f"--lfw {raw_root} is not a folder of <person>/<image> folders")
    out = safe_child(workspace.cropped, crop_folder_name(config, workspace, raw_root), what="crop folder")
    options = CropOptions.from_config(config)
    if device is not None:
        options = replace(options, device=device)
    summary = crop_tree(raw_root, out, options, shard_size=config.crop_shard_size, wait=True)
    return out, summary
