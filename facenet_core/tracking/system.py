"""System metrics while training: MLflow's own monitor (CPU, memory, disk, network, and GPU
utilisation and memory when nvidia-ml-py or pyrsmi is installed) logged as `system/*` metrics.

A tracking outage never stops training: no monitor starts while the store is known to be down,
and a monitor that loses the store stops on its own (its samples are not buffered).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from facenet_core.tracking.metrics import recently_unreachable

log = logging.getLogger(__name__)


def _start(run_id: str, tracking_uri: str | None) -> Any | None:
    """A started monitor whose steps continue the run's earlier system metrics, or None."""
    from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor
    from mlflow.system_metrics.metrics.rocm_monitor import ROCMMonitor
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    try:
        monitor = SystemMetricsMonitor(run_id, resume_logging=True, tracking_uri=tracking_uri)
    except Exception as error:  # psutil missing, or the store failing while the last step is read
        log.warning("system metrics not logged for run %s: %s", run_id, error)
        return None
    if not any(isinstance(m, GPUMonitor | ROCMMonitor) for m in monitor.monitors) and _has_cuda():
        log.warning("GPU metrics need NVML (nvidia-ml-py and the driver library): GPU use and memory not logged")
    monitor.start()
    return monitor


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@contextmanager
def system_metrics(run_id: str | None, tracking_uri: str | None, *, enabled: bool = True) -> Iterator[Any | None]:
    """Log system metrics into run `run_id` while the block runs (config `log_system_metrics`).

    Yields MLflow's `SystemMetricsMonitor`, or None when disabled, when there is no run (MLflow
    was unreachable when it opened) or while the store is known to be down. Sampling every 10 s
    by default; MLflow's MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL (seconds) changes it.
    """
    monitor = None
    if enabled and run_id is not None and not recently_unreachable(tracking_uri):
        monitor = _start(run_id, tracking_uri)
    try:
        yield monitor
    finally:
        if monitor is not None:
            monitor.finish()
