"""The workspace folder layout (docs/ARCHITECTURE.md) and the run key that names a training run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facenet_core.config.schema import Config
from facenet_core.config.stages import stage_values
from facenet_core.fileio import sha256_json
from facenet_core.safepath import safe_child


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; `ensure()` creates the folders."""

    root: Path

    @classmethod
    def from_config(cls, config: Config) -> Workspace:
        return cls(Path(config.workspace).expanduser().resolve())

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
