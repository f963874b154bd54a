"""Metric logging through a tracking outage: reported, buffered under the run dir, replayed later."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from mlflow import MlflowClient

from facenet_core.tracking import metrics
from facenet_core.tracking.metrics import (
    buffer_path,
    log_artifacts,
    log_epoch_metrics,
    log_step_metrics,
    replay_metrics,
)
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.uri import resolve_tracking


@pytest.fixture
def dead_uri(monkeypatch: pytest.MonkeyPatch) -> str:
    """An http tracking URI on a closed local port, with MLflow's retries off so it fails at once."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setattr(metrics, "_down_since", {})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_outage_is_reported_buffered_and_replayed(config, tmp_path, dead_uri, caplog):
    run_dir = tmp_path / "runs" / "key"
    report = tmp_path / "roc_lfw_epoch_0.png"
    report.write_bytes(b"\x89PNG fake")
    with caplog.at_level(logging.WARNING, logger="facenet_core.tracking.metrics"):
        assert not log_step_metrics("run-1", {"train/loss": 0.9}, step=1, run_dir=run_dir, tracking_uri=dead_uri)
    assert any("unreachable" in r.getMessage() and dead_uri in r.getMessage() for r in caplog.records)
    # Within the retry interval the server is not contacted again: everything is buffered.
    assert not log_step_metrics("run-1", {"train/loss": 0.7}, step=2, run_dir=run_dir, tracking_uri=dead_uri)
    assert not log_epoch_metrics("run-1", 0, "lfw", {"accuracy": 0.65}, run_dir=run_dir, tracking_uri=dead_uri)
    assert not log_artifacts("run-1", [report], run_dir=run_dir, artifact_path="reports", tracking_uri=dead_uri)
    records = [json.loads(line) for line in buffer_path(run_dir).read_text().splitlines()]
    assert [r["kind"] for r in records] == ["metrics", "metrics", "metrics", "artifacts"]
    assert records[2]["metrics"] == {"lfw/accuracy": 0.65} and records[2]["step"] == 0

    run_id = open_run(config, "key")
    uri, _ = resolve_tracking(config)
    assert replay_metrics(run_dir, run_id, tracking_uri=uri) == 4
    assert not buffer_path(run_dir).exists()
    client = MlflowClient(uri)
    loss = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "train/loss"))
    assert loss == [(1, 0.9), (2, 0.7)]
    assert client.get_run(run_id).data.metrics["lfw/accuracy"] == 0.65
    assert [a.path for a in client.list_artifacts(run_id, "reports")] == ["reports/roc_lfw_epoch_0.png"]
    assert replay_metrics(run_dir, run_id, tracking_uri=uri) == 0


def test_next_successful_call_replays_the_buffer_first(config, tmp_path, dead_uri):
    run_dir = tmp_path / "runs" / "key"
    assert not log_step_metrics(None, {"train/loss": 1.0}, step=5, run_dir=run_dir, tracking_uri=dead_uri)
    run_id = open_run(config, "key")
    uri, _ = resolve_tracking(config)
    assert log_step_metrics(run_id, {"train/loss": 0.8}, step=6, run_dir=run_dir, tracking_uri=uri)
    assert not buffer_path(run_dir).exists()
    history = MlflowClient(uri).get_metric_history(run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(5, 1.0), (6, 0.8)]


def test_corrupt_buffer_names_the_file(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    buffer_path(run_dir).write_text('{"kind": "metrics"\n')
    with pytest.raises(ValueError, match="mlflow-buffer.jsonl: line 1"):
        replay_metrics(run_dir, "any", tracking_uri=f"sqlite:///{tmp_path}/m.db")


def test_replay_command_finds_the_run_by_run_name(config, tmp_path, dead_uri, capsys):
    import argparse

    from flows.cli import mlflow_replay

    run_dir = tmp_path / "workspace" / "runs" / "key"
    assert not log_epoch_metrics(None, 3, "lfw", {"accuracy": 0.9}, run_dir=run_dir, tracking_uri=dead_uri)
    run_id = open_run(config, "key")
    parser = argparse.ArgumentParser()
    mlflow_replay.register(parser.add_subparsers())
    args = parser.parse_args(["mlflow-replay", "--workspace", config.workspace, "--run-name", "key"])
    assert args.func(args) == 0
    assert f"replayed 1 buffered records from {run_dir} into MLflow run {run_id}" in capsys.readouterr().out
    uri, _ = resolve_tracking(config)
    assert MlflowClient(uri).get_run(run_id).data.metrics["lfw/accuracy"] == 0.9
    assert not buffer_path(run_dir).exists()
    missing = parser.parse_args(["mlflow-replay", "--workspace", config.workspace])
    with pytest.raises(ValueError, match="--run_name is required"):
        missing.func(missing)


def test_replay_groups_metrics_within_mlflow_batch_limit():
    from facenet_core.tracking.metrics import _batches

    def metrics_record(count: int) -> dict:
        return {"kind": "metrics", "metrics": {f"m{i}": 0.0 for i in range(count)}, "step": 0, "timestamp": 0}

    artifacts = {"kind": "artifacts", "paths": [], "artifact_path": None}
    records = [metrics_record(400), metrics_record(500), metrics_record(200), artifacts, metrics_record(1)]
    groups = [(done, [len(r.get("metrics", ())) for r in group]) for done, group in _batches(records)]
    assert groups == [(2, [400, 500]), (3, [200]), (4, [0]), (5, [1])]
