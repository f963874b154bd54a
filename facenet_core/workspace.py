"""The workspace folder layout (docs/ARCHITECTURE.md), the files of one training run (RunLayout) and
the run key that names a training run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from facenet_core.config.schema import Config
from facenet_core.config.stages import stage_values
from facenet_core.fileio import sha256_json
from facenet_core.safepath import safe_child

# Names of the files in a checkpoints/ folder: a run's (RunLayout), or any folder the checkpoint
# functions (train/checkpoints.py, train/state.py) are given.
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


def epoch_checkpoint_name(epoch: int) -> str:
    """epoch_<e>.pt: the weights of one epoch."""
    return f"epoch_{epoch}.pt"


@dataclass(frozen=True)
class RunLayout:
    """The files of one training run, runs/<run_key>/:

    config.yaml                the resolved config the run trains with
    checkpoints/epoch_<e>.pt   weights of epoch e (kept for re-evaluation), epoch_<e>.json its summary
    checkpoints/last.pt        the full training state of the newest epoch (what a resume continues)
    checkpoints/best.pt        the full state of the best evaluated epoch
    triplets/epoch_<e>.npy     the triplets epoch e trained on (and their .json sidecar), sampling: triplets
    pk_batches/epoch_<e>.npy   the P x K batches epoch e trained on (and their .json sidecar), sampling: pk
    reports/                   evaluation tables and plots
    launch/                    config and step metrics of a torchrun epoch
    """

    run_dir: Path

    @classmethod
    def of_checkpoint(cls, path: str | os.PathLike) -> RunLayout:
        """The run whose checkpoints/ folder holds the file `path`."""
        return cls(Path(path).parent.parent)

    @property
    def config(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / epoch_checkpoint_name(epoch)

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def best(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    def triplets(self, epoch: int) -> Path:
        return self.run_dir / "triplets" / f"epoch_{epoch}.npy"

    def pk_batches(self, epoch: int) -> Path:
        return self.run_dir / "pk_batches" / f"epoch_{epoch}.npy"

    @property
    def reports(self) -> Path:
        return self.run_dir / "reports"

    @property
    def launch(self) -> Path:
        return self.run_dir / "launch"

    def launch_config(self, epoch: int) -> Path:
        return self.launch / f"epoch_{epoch}.config.yaml"

    def launch_metrics(self, epoch: int) -> Path:
        return self.launch / f"epoch_{epoch}.metrics.jsonl"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; `ensure()` creates the folders."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> Workspace:
        """The workspace whose root is `root` (user-expanded, absolute)."""
        return cls(Path(root).expanduser().resolve())

    @classmethod
    def from_config(cls, config: Config) -> Workspace:
        return cls.at(config.workspace)

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def cropped(self) -> Path:
        return self.root / "cropped"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def prefect_results(self) -> Path:
        """Prefect's persisted task results and the stage output records (tasks/caching.py)."""
        return self.root / "prefect-results"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow-artifacts"

    def run_dir(self, run_key: str) -> Path:
        """runs/<run_key>, the key checked to be one plain name (a run_name comes from the user)."""
        return safe_child(self.runs, run_key, what="run name")

    def run_layout(self, run_key: str) -> RunLayout:
        """The files of the run `run_key`."""
        return RunLayout(self.run_dir(run_key))

    def ensure(self) -> Workspace:
        for folder in (self.downloads, self.raw, self.cropped, self.manifests, self.runs, self.prefect_results):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def run_key(config: Config, manifest_fingerprint: str) -> str:
    """The user's run_name, else a short hash of the training-relevant config and the data."""
    if config.run_name:
        return config.run_name
    digest = sha256_json({"config": stage_values(config, "run"), "manifest": manifest_fingerprint})
    return f"{config.model_architecture}-{digest[:10]}"
