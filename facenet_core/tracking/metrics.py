"""Metric and artifact logging that survives a tracking outage.

Training must not stop because the tracking server is down. Every call tries MLflow; when it
fails, a warning is logged and the records are appended to `<run_dir>/mlflow-buffer.jsonl`;
for `RETRY_AFTER_S` seconds after a failure the server is not tried again (no stall per step).
The next successful call, or `replay_metrics`, logs the buffer into the run with its original
timestamps and steps, then removes it.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from facenet_core.fileio import atomic_write_text

log = logging.getLogger(__name__)

BUFFER_NAME = "mlflow-buffer.jsonl"
RETRY_AFTER_S = 60.0
METRICS_PER_BATCH = 1000  # MLflow's log_batch limit

_lock = threading.Lock()
_down_since: dict[str, float] = {}


def buffer_path(run_dir: str | os.PathLike) -> Path:
    """The JSONL file holding records not yet logged to MLflow."""
    return Path(run_dir) / BUFFER_NAME


def scalar_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Real-valued entries as floats; arrays, strings and None are not metrics and are left out."""
    out = {}
    for name, value in metrics.items():
        if isinstance(value, numbers.Real) or (hasattr(value, "item") and getattr(value, "size", 0) == 1):
            out[f"{prefix}{name}"] = float(value)
    return out


def now_ms() -> int:
    """Now, in MLflow's timestamp unit (milliseconds since the epoch)."""
    return int(time.time() * 1000)


def _append_buffer(run_dir: str | os.PathLike, records: list[dict]) -> None:
    path = buffer_path(run_dir)
    with _lock:
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        added = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)
        atomic_write_text(path, existing + added)


def _read_buffer(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {number} is not JSON ({exc}); fix or remove that line") from exc
    return records


def _batches(records: list[dict]) -> Iterator[tuple[int, list[dict]]]:
    """Consecutive metrics records grouped up to MLflow's batch limit, artifacts records alone.

    Yields (number of records consumed so far, group), in buffer order.
    """
    group: list[dict] = []
    size = 0
    for index, record in enumerate(records):
        count = len(record.get("metrics", ()))
        if group and (record["kind"] != "metrics" or size + count > METRICS_PER_BATCH):
            yield index, group
            group, size = [], 0
        group.append(record)
        size += count
        if record["kind"] != "metrics":
            yield index + 1, group
            group, size = [], 0
    if group:
        yield len(records), group


def _apply(client: Any, run_id: str, group: list[dict]) -> None:
    """Log a group from `_batches`: metrics in one log_batch call, or one artifacts record."""
    from mlflow.entities import Metric

    if group[0]["kind"] == "metrics":
        metrics = [Metric(k, v, r["timestamp"], r["step"]) for r in group for k, v in r["metrics"].items()]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])
    elif group[0]["kind"] == "artifacts":
        record = group[0]
        for item in map(Path, record["paths"]):
            if item.is_dir():
                client.log_artifacts(run_id, str(item), record.get("artifact_path"))
            elif item.exists():
                client.log_artifact(run_id, str(item), record.get("artifact_path"))
            else:
                log.warning("MLflow: artifact %s no longer exists; not logged", item)
    else:
        raise ValueError(f"unknown buffered record kind {group[0]['kind']!r}")


def _is_caller_error(exc: Exception) -> bool:
    """A request MLflow rejected as invalid: a bug to raise, not an outage to buffer."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code == "INVALID_PARAMETER_VALUE"


def replay_metrics(run_dir: str | os.PathLike, run_id: str, tracking_uri: str | None = None) -> int:
    """Log every buffered record of `run_dir` into run `run_id`; returns how many were logged.

    The buffer shrinks after each logged record, so a replay interrupted by another outage
    resumes where it stopped; it is removed once empty.
    """
    from mlflow import MlflowClient

    path = buffer_path(run_dir)
    if not path.exists():
        return 0
    records = _read_buffer(path)
    client = MlflowClient(tracking_uri)
    for done, group in _batches(records):
        _apply(client, run_id, group)
        with _lock:
            rest = records[done:]
            if rest:
                atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rest))
            else:
                path.unlink(missing_ok=True)
    log.info("MLflow: replayed %d buffered records from %s into run %s", len(records), path, run_id)
    return len(records)


def recently_unreachable(tracking_uri: str | None = None) -> bool:
    """Whether a call to this store (default: MLflow's current one) failed in the last
    `RETRY_AFTER_S` seconds: callers that would block on it skip it for now."""
    import mlflow

    failed_at = _down_since.get(tracking_uri or mlflow.get_tracking_uri())
    return failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S


def _send(run_id: str | None, records: list[dict], run_dir: str | os.PathLike, tracking_uri: str | None) -> bool:
    """Log `records` now, or buffer them when there is no run or MLflow is unreachable."""
    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    if run_id is None or recently_unreachable(uri):
        _append_buffer(run_dir, records)
        return False
    try:
        replay_metrics(run_dir, run_id, uri)
        client = mlflow.MlflowClient(uri)
        for _, group in _batches(records):
            _apply(client, run_id, group)
    except Exception as exc:
        if _is_caller_error(exc):
            raise
        _down_since[uri] = time.monotonic()
        log.warning(
            "MLflow at %s is unreachable (%s); buffering to %s, training goes on "
            "(replayed on the next successful call, or with `facenet mlflow-replay`)",
            uri,
            exc,
            buffer_path(run_dir),
        )
        _append_buffer(run_dir, records)
        return False
    _down_since.pop(uri, None)
    return True


def log_step_metrics(
    run_id: str | None,
    metrics: Mapping[str, Any],
    step: int,
    *,
    run_dir: str | os.PathLike,
    tracking_uri: str | None = None,
) -> bool:
    """Log training metrics (e.g. train/loss, train/learning_rate) at a global step.

    Returns True when logged, False when buffered under `run_dir`.
    """
    record = {"kind": "metrics", "metrics": scalar_metrics(metrics), "step": int(step), "timestamp": now_ms()}
    return _send(run_id, [record], run_dir, tracking_uri)


def log_epoch_metrics(
    run_id: str | None,
    epoch: int,
    set_name: str,
    metrics: Mapping[str, Any],
    *,
    run_dir: str | os.PathLike,
    tracking_uri: str | None = None,
) -> bool:
    """Log one evaluation's metrics as `<set_name>/<metric>` at step `epoch`."""
    record = {
        "kind": "metrics",
        "metrics": scalar_metrics(metrics, prefix=f"{set_name}/"),
        "step": int(epoch),
        "timestamp": now_ms(),
    }
    return _send(run_id, [record], run_dir, tracking_uri)


def log_artifacts(
    run_id: str | None,
    paths: Iterable[str | os.PathLike],
    *,
    run_dir: str | os.PathLike,
    artifact_path: str | None = None,
    tracking_uri: str | None = None,
) -> bool:
    """Upload files or folders (ROC and accuracy plots, the metrics table) under `artifact_path`."""
    record = {"kind": "artifacts", "paths": [str(Path(p).resolve()) for p in paths], "artifact_path": artifact_path}
    return _send(run_id, [record], run_dir, tracking_uri)
