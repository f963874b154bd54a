"""Process set-up shared by every flow entry point: telemetry off, embedded Prefect state."""

from __future__ import annotations

import os
from pathlib import Path

from facenet_core.env import disable_telemetry


def prepare_process(workspace: str | os.PathLike) -> None:
    """Call before importing Prefect: telemetry off, embedded Prefect state kept in the workspace.

    With PREFECT_API_URL set (a real server) only the telemetry switches apply.
    """
    disable_telemetry()
    root = Path(workspace).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
        # A loaded 2-core machine can take longer than Prefect's default 20 s to start it.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # The library's own log lines (evaluation summaries, skipped images) go to Prefect's logs too.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "facenet_core")
