"""The product path for real: Prefect server, process work pool, `prefect deploy --all`, a worker,
`prefect deployment run 'facenet-train/facenet-train'`, a failed run retried with `prefect flow-run retry`."""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support.processes import BIN, prefect_server, start, stop
from support.tiny import TINY

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def prefect(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def flow_run_state(flow_run_id: str, env: dict) -> str:
    out = prefect(["flow-run", "inspect", flow_run_id, "--output", "json"], env)
    return json.loads(out.stdout)["state"]["type"]


def wait_until_final(flow_run_id: str, env: dict, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = flow_run_state(flow_run_id, env)
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(3)
    raise TimeoutError(f"flow run {flow_run_id} still {state} after {timeout:.0f} s")


def test_deployment_run_through_worker_and_retry(tmp_path):
    server, env = prefect_server(tmp_path)
    env = {**env, "PWD": str(REPO)}
    worker = None
    try:
        assert prefect(["work-pool", "create", "facenet", "--type", "process"], env).returncode == 0
        deployed = prefect(["--no-prompt", "deploy", "--all"], env)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        for name in ("facenet-train", "facenet-prepare-data", "facenet-crop", "facenet-evaluate"):
            assert name in deployed.stdout
        worker = start([str(BIN / "prefect"), "worker", "start", "--pool", "facenet"], env, tmp_path / "worker.log")

        pairs = tmp_path / "pairs-later.txt"  # absent on the first attempt: the flow fails after cropping
        preset = tmp_path / "tiny.yaml"
        eval_set = {**TINY["eval_sets"][0], "pairs": str(pairs)}
        # Two crop worker processes: spawned from the flow-run process the worker started.
        overrides = {"workspace": str(tmp_path / "ws"), "eval_sets": [eval_set], "crop_workers": 2}
        preset.write_text(yaml.safe_dump({**TINY, **overrides}))
        params = json.dumps({"preset": str(preset)})
        first = prefect(
            [
                "deployment",
                "run",
                "facenet-train/facenet-train",
                "--params",
                params,
                "--watch",
                "--watch-timeout",
                "900",
            ],
            env,
            timeout=960,
        )
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", first.stdout).group(1)
        assert flow_run_state(flow_run_id, env) == "FAILED"
        assert (tmp_path / "ws" / "cropped" / "tiny" / "detections.parquet").is_file()

        shutil.copy(tmp_path / "ws" / "raw" / "tiny" / "pairs.txt", pairs)
        assert prefect(["flow-run", "retry", flow_run_id], env).returncode == 0
        assert wait_until_final(flow_run_id, env) == "COMPLETED"
        logs = prefect(["flow-run", "logs", flow_run_id], env).stdout
        retried = logs.split("Finished in state Failed")[-1]
        assert retried.count("Finished in state Cached") >= 3  # demo archive, download, manifest
        assert list((tmp_path / "ws" / "runs").glob("*/checkpoints/epoch_1.pt"))
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
    assert server.poll() is not None and (worker is None or worker.poll() is not None)
