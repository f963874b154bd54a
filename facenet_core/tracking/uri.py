"""Where MLflow runs and artifacts live: the workspace's SQLite store unless a server is named."""

from __future__ import annotations

import os
from pathlib import Path

from facenet_core.config.schema import Config
from facenet_core.env import disable_telemetry
from facenet_core.workspace import Workspace

# A tracking outage should cost seconds, not MLflow's default minutes of retries, because the
# caller buffers the metrics and goes on training. Applied only when the user has not set them.
FAIL_FAST_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
_LOCAL_SCHEMES = ("sqlite:", "file:", "postgresql", "mysql", "mssql")
# mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; a value this process exported itself
# is not the user's choice and must not redirect another workspace to this one's store.
_exported: set[str] = set()


def resolve_tracking(config: Config, workspace: Workspace | None = None) -> tuple[str, str | None]:
    """(tracking_uri, artifact_root) for this config.

    Order: `config.mlflow_tracking_uri`, then the MLFLOW_TRACKING_URI environment variable,
    then `sqlite:///<workspace>/mlflow.db`. The artifact root is `<workspace>/mlflow-artifacts`
    for a database or file store, and None for a tracking server (it keeps its own artifacts).
    """
    workspace = workspace or Workspace.from_config(config)
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env in _exported:
        from_env = None
    uri = config.mlflow_tracking_uri or from_env or f"sqlite:///{workspace.mlflow_db}"
    if uri.startswith(_LOCAL_SCHEMES) or "://" not in uri:
        return uri, workspace.mlflow_artifacts.as_uri()
    return uri, None


def configure_tracking(config: Config, workspace: Workspace | None = None) -> tuple[str, str | None]:
    """Point this process's MLflow at the resolved store, with telemetry off and fail-fast HTTP.

    Creates the workspace folder a SQLite store needs. Returns `resolve_tracking`'s pair.
    """
    import mlflow

    disable_telemetry()
    for key, value in FAIL_FAST_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri, artifact_root = resolve_tracking(config, workspace)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("MLFLOW_TRACKING_URI") != uri:
        _exported.add(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri, artifact_root
