"""Process-wide environment settings shared by every entry point."""

import os

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def disable_telemetry() -> None:
    """Switch off Prefect's and MLflow's usage reporting for this process and its children."""
    for key, value in TELEMETRY_OFF.items():
        os.environ[key] = value
