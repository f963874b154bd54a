"""System metrics while training: MLflow's monitor, switched by the config, never in training's way."""

from __future__ import annotations

import time

from mlflow import MlflowClient
from support.processes import free_port

from facenet_core.tracking import metrics as tracking_metrics
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.system import system_metrics
from facenet_core.tracking.uri import resolve_tracking

CPU = "system/cpu_utilization_percentage"
MEMORY = "system/system_memory_usage_megabytes"


def wait_for_steps(client: MlflowClient, run_id: str, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        steps = sorted(m.step for m in client.get_metric_history(run_id, CPU))
        if len(steps) >= count:
            return steps
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} system samples after 60 s")


def test_sampled_while_the_block_runs_and_continued_by_the_next_epoch(config, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    run_id = open_run(config, "key-sys")
    uri = resolve_tracking(config)[0]
    client = MlflowClient(uri)
    assert config.log_system_metrics  # on by default
    with system_metrics(run_id, uri, enabled=config.log_system_metrics) as monitor:
        assert monitor is not None
        first = wait_for_steps(client, run_id, 2)
    assert first[:2] == [0, 1]
    with system_metrics(run_id, uri):  # the next epoch's monitor continues the steps
        steps = wait_for_steps(client, run_id, len(first) + 1)
    assert steps == list(range(len(steps)))  # no step logged twice
    memory = client.get_metric_history(run_id, MEMORY)
    assert memory and all(m.value > 0 for m in memory)
    assert client.get_run(run_id).info.status == "RUNNING"


def test_off_without_a_run_or_while_the_store_is_down(config, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    run_id = open_run(config, "key-off")
    uri = resolve_tracking(config)[0]
    with system_metrics(run_id, uri, enabled=False) as monitor:
        assert monitor is None
        time.sleep(0.6)
    with system_metrics(None, uri) as monitor:  # MLflow was unreachable when the run opened
        assert monitor is None
    assert CPU not in MlflowClient(uri).get_run(run_id).data.metrics

    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setitem(tracking_metrics._down_since, down, time.monotonic())
    started = time.monotonic()
    with system_metrics("0" * 32, down) as monitor:  # a store that just failed is not tried again
        assert monitor is None
    assert time.monotonic() - started < 1
