"""A run per run_key: reopened on resume, params logged once, provenance recorded."""

from __future__ import annotations

from mlflow import MlflowClient

from facenet_core.tracking.metrics import log_epoch_metrics, log_step_metrics
from facenet_core.tracking.provenance import TAG_GIT_COMMIT, TAG_MANIFEST, provenance_tags
from facenet_core.tracking.runs import TAG_CHANGED, experiment_name, flatten_config, open_run
from facenet_core.tracking.uri import configure_tracking, resolve_tracking
from facenet_core.workspace import Workspace


def test_default_store_is_sqlite_in_the_workspace(config, monkeypatch):
    workspace = Workspace.from_config(config)
    uri, artifacts = resolve_tracking(config)
    assert uri == f"sqlite:///{workspace.root}/mlflow.db"
    assert artifacts == (workspace.root / "mlflow-artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_tracking(config) == ("http://tracking.example:5000", None)
    named = config.model_copy(update={"mlflow_tracking_uri": "sqlite:////data/other.db"})
    assert resolve_tracking(named)[0] == "sqlite:////data/other.db"


def test_each_workspace_keeps_its_own_store(config, tmp_path):
    first = configure_tracking(config)[0]
    other = config.model_copy(update={"workspace": str(tmp_path / "other")})
    assert resolve_tracking(other)[0] == f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}" != first


def test_flatten_config_joins_nested_keys():
    from facenet_core.config.schema import Config

    flat = flatten_config(Config(normalize_mean=[0.5, 0.5, 0.5]))
    assert flat["lr_schedule.type"] == "constant"
    assert flat["normalize_mean"] == "[0.5, 0.5, 0.5]"
    assert flat["dataset.name"] == "demo"
    assert flat["run_name"] == "None"


def test_run_is_reopened_by_run_key(config, tmp_path):
    tags = provenance_tags(manifest_fingerprint="m" * 64, eval_fingerprints={"lfw": "e" * 64}, flow_run_id="fr-1")
    run_id = open_run(config, "key-a", tags=tags)
    uri, _ = resolve_tracking(config)
    client = MlflowClient(uri)
    run_dir = tmp_path / "run"
    assert log_step_metrics(run_id, {"train/loss": 0.5, "train/learning_rate": 0.075}, step=10, run_dir=run_dir)
    assert log_epoch_metrics(run_id, 0, "lfw", {"accuracy": 0.6, "fpr": [0.0, 1.0]}, run_dir=run_dir)

    resumed = config.model_copy(update={"learning_rate": 0.01, "epochs": 3})
    again = open_run(resumed, "key-a", tags=provenance_tags(flow_run_id="fr-2"))
    assert again == run_id
    assert log_step_metrics(again, {"train/loss": 0.4, "train/learning_rate": 0.01}, step=20, run_dir=run_dir)
    assert log_epoch_metrics(again, 1, "lfw", {"accuracy": 0.7}, run_dir=run_dir)

    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert client.get_experiment(run.info.experiment_id).name == experiment_name(config) == "facenet-demo"
    assert run.data.params["learning_rate"] == "0.075"  # never re-logged
    assert run.data.params["model_architecture"] == "mobilenetv2"
    assert set(run.data.tags[TAG_CHANGED].split(",")) == {"epochs", "learning_rate"}
    assert run.data.tags[TAG_MANIFEST] == "m" * 64
    assert run.data.tags["facenet.eval_set.lfw.fingerprint"] == "e" * 64
    assert run.data.tags["prefect.flow_run_id"] == "fr-2"
    assert len(run.data.tags[TAG_GIT_COMMIT]) == 40
    lr = [(m.step, m.value) for m in client.get_metric_history(run_id, "train/learning_rate")]
    assert sorted(lr) == [(10, 0.075), (20, 0.01)]
    accuracy = [(m.step, m.value) for m in client.get_metric_history(run_id, "lfw/accuracy")]
    assert sorted(accuracy) == [(0, 0.6), (1, 0.7)]
    assert "lfw/fpr" not in run.data.metrics
    artifacts = {a.path for folder in ("config", "provenance") for a in client.list_artifacts(run_id, folder)}
    assert len([p for p in artifacts if p.startswith("config/config-")]) == 2  # first and resumed config
    assert len([p for p in artifacts if p.startswith("provenance/packages-")]) == 1
    packages = client.download_artifacts(run_id, next(p for p in artifacts if p.startswith("provenance/")))
    assert "mlflow==" in open(packages).read()

    other = open_run(config, "key-b")
    assert other != run_id
