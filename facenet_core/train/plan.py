"""Where a training run stands and which epochs are left: the one resume rule of the facenet-train
flow and of `facenet train`.

The rule: a run continues after the later of `resume_path` and the run folder's last.pt. The run
began at epoch 0, or at the epoch after resume_path's (the epoch --training_triplets_path feeds, as
the seed's first epoch); the epochs from there up to last.pt's are trained already and are not
trained again, whatever the cache says; training continues from the later checkpoint (ties: resume_path).
A rerun of the flow on a finished run therefore finds its epochs Cached, or, when they were trained
outside the cache (by `facenet train`), takes them from the run folder as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facenet_core.config.schema import Config
from facenet_core.train.checkpoints import load_checkpoint, stored_epoch
from facenet_core.workspace import RunLayout, Workspace, run_key


@dataclass(frozen=True)
class RunPlan:
    """A training run's key and files, and its epochs: `began` .. `epochs` - 1, of which those before
    `first_epoch` are trained already; `first_epoch` trains from `resume_checkpoint` (None: a new
    model), and `began` from `start_checkpoint` (the config's resume_path, or None)."""

    run_key: str
    layout: RunLayout
    epochs: int
    began: int
    first_epoch: int
    resume_checkpoint: Path | None
    start_checkpoint: Path | None

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir

    @property
    def trained(self) -> range:
        """Epochs of the run the run folder holds already."""
        return range(self.began, min(self.first_epoch, self.epochs))

    @property
    def remaining(self) -> range:
        """Epochs left to train."""
        return range(self.first_epoch, self.epochs)


def plan_run(config: Config, manifest_fingerprint: str, workspace: Workspace) -> RunPlan:
    """The plan of the run this config trains on this manifest (see the module's rule)."""
    key = run_key(config, manifest_fingerprint)
    layout = workspace.run_layout(key)
    start = Path(config.resume_path) if config.resume_path else None
    if start is not None and not start.is_file():
        raise FileNotFoundError(f"resume_path {start} does not exist")
    began = int(load_checkpoint(start)["epoch"]) + 1 if start is not None else 0
    resume, first_epoch = start, began
    last_epoch = stored_epoch(layout.last)
    if last_epoch is not None and last_epoch + 1 > first_epoch:
        resume, first_epoch = layout.last, last_epoch + 1
    return RunPlan(key, layout, config.epochs, began, first_epoch, resume, start)
