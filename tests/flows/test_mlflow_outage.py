"""MLflow unreachable during a run: training finishes, metrics are buffered, the next run logs them."""

from pathlib import Path

import pytest
from mlflow import MlflowClient
from support.processes import free_port

from facenet_core.config import load_config
from facenet_core.tracking.runs import experiment_name
from facenet_core.tracking.uri import resolve_tracking
from flows.train import run_in_process

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_outage_then_rerun_replays_metrics_and_registers(tiny_preset):
    down = {"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(RuntimeError, match="MLflow was unreachable"):
        run_in_process(tiny_preset, down)
    run_dir = next(Path(tiny_preset.parent, "workspace", "runs").iterdir())
    assert (run_dir / "checkpoints" / "epoch_1.pt").is_file()
    buffer = run_dir / "mlflow-buffer.jsonl"
    assert buffer.is_file() and buffer.stat().st_size > 0

    summary = run_in_process(tiny_preset)
    assert summary["run_dir"] == str(run_dir) and not buffer.exists()
    assert summary["stage_states"]["Completed"] == 2  # only tracking and registration ran again
    assert summary["registered"]["alias"] == "champion"
    cfg = load_config(tiny_preset)
    client = MlflowClient(resolve_tracking(cfg)[0])
    run = client.get_run(summary["tracking_run_id"])
    assert run.info.experiment_id == client.get_experiment_by_name(experiment_name(cfg)).experiment_id
    history = client.get_metric_history(run.info.run_id, "tiny-eval/accuracy")
    assert sorted(m.step for m in history) == [0, 1]  # replayed once, and linking the model added no point
    best = summary["registered"]["epoch"]
    linked = {m.key: m for m in client.get_logged_model(summary["registered"]["model_id"]).metrics}
    assert {"tiny-eval/accuracy", "tiny-eval/roc_auc", "tiny-eval/tar_at_far"} <= set(linked)
    assert linked["tiny-eval/accuracy"].value == next(m.value for m in history if m.step == best)
    assert linked["tiny-eval/accuracy"].dataset_name == "tiny-eval"
    contexts = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
    assert contexts == ["evaluation", "training"]
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert {f"reports/distances_tiny-eval_epoch_{e}.png" for e in (0, 1)} <= reports
    assert {m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")} == {0, 1}
    assert client.get_metric_history(run.info.run_id, "train/loss")
