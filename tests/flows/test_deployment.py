"""The product path for real: Prefect server, process work pool, `prefect deploy --all` from a git
checkout, a worker elsewhere that runs the code its flow runs clone from git, `prefect deployment run
'facenet-train/facenet-train'`, a failed run retried with `prefect flow-run retry`, and the training
deployment's concurrency limit."""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from support.processes import BIN, prefect_server, start, stop
from support.tiny import TINY

REPO = Path(__file__).resolve().parents[2]
GIT_USER = ["-c", "user.name=facenet", "-c", "user.email=facenet@localhost"]
pytestmark = pytest.mark.slow


def prefect(args: list[str], env: dict, timeout: float = 300, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def git(args: list[str], cwd: Path) -> str:
    return subprocess.run(["git", *GIT_USER, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


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


def project_remote(tmp: Path, marker: Path) -> Path:
    """A git repository of this project's files as the working tree has them, standing for the team's
    remote. Its flows/train.py also appends the paths it and facenet_core were loaded from to `marker`."""
    remote = tmp / "remote"
    listed = git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO).split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (remote / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, remote / name)
    with open(remote / "flows" / "train.py", "a") as flow_file:
        flow_file.write(
            f"\nwith open({str(marker)!r}, 'a') as _marker:\n"
            "    _marker.write(__file__ + ' ' + __import__('facenet_core').__file__ + '\\n')\n"
        )
    git(["init", "-q", "-b", "main"], remote)
    git(["add", "-A"], remote)
    git(["commit", "-q", "-m", "facenet-flow"], remote)
    return remote


def test_deployment_from_git_through_worker_retry_and_concurrency(tmp_path):
    server, env = prefect_server(tmp_path)
    api = env["PREFECT_API_URL"]
    marker = tmp_path / "code-loaded-from.txt"
    remote = project_remote(tmp_path, marker)
    checkout = tmp_path / "checkout"
    git(["clone", "-q", remote.as_uri(), str(checkout)], tmp_path)
    commit = git(["rev-parse", "HEAD"], checkout).strip()
    worker_home = tmp_path / "worker-home"
    worker_home.mkdir()
    worker = None
    try:
        assert prefect(["work-pool", "create", "facenet", "--type", "process"], env).returncode == 0
        # Outside a git checkout there is no commit to pin: the build step stops the deploy.
        plain = tmp_path / "plain-copy"
        shutil.copytree(checkout, plain, ignore=shutil.ignore_patterns(".git"))
        refused = prefect(["--no-prompt", "deploy", "--all"], env, cwd=plain)
        assert refused.returncode != 0 and "not a git repository" in refused.stdout + refused.stderr
        assert httpx.get(f"{api}/deployments/name/facenet-train/facenet-train").status_code == 404

        deployed = prefect(["--no-prompt", "deploy", "--all"], env, cwd=checkout)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        deployments = {}
        for name in ("facenet-train", "facenet-prepare-data", "facenet-crop", "facenet-evaluate"):
            deployments[name] = httpx.get(f"{api}/deployments/name/{name}/{name}").json()  # flow = deployment name
        for name, deployment in deployments.items():
            assert deployment["version"] == f"0.1.0+{commit}", name
            assert "facenet" in deployment["tags"], name
            # Flow runs clone the remote at the deployed commit: no folder of the deploying machine.
            assert deployment["pull_steps"] == [
                {"prefect.deployments.steps.git_clone": {"repository": remote.as_uri(), "commit_sha": commit}}
            ]
        assert "gpu" in deployments["facenet-train"]["tags"]
        assert deployments["facenet-train"]["global_concurrency_limit"]["limit"] == 1
        assert deployments["facenet-train"]["concurrency_options"]["collision_strategy"] == "ENQUEUE"
        assert deployments["facenet-crop"]["global_concurrency_limit"] is None
        crop_form = deployments["facenet-crop"]["parameter_openapi_schema"]
        assert crop_form["properties"]["options"]["$ref"] == "#/definitions/CropOptions"

        worker = start(
            [str(BIN / "prefect"), "worker", "start", "--pool", "facenet"],
            env,
            tmp_path / "worker.log",
            cwd=worker_home,
        )
        pairs = tmp_path / "pairs-later.txt"  # absent on the first attempt: the flow fails after cropping
        preset = tmp_path / "tiny.yaml"
        eval_set = {**TINY["eval_sets"][0], "pairs": str(pairs)}
        # Two crop worker processes: spawned from the flow-run process the worker started.
        overrides = {"workspace": str(tmp_path / "ws"), "eval_sets": [eval_set], "crop_workers": 2}
        preset.write_text(yaml.safe_dump({**TINY, **overrides}))
        params = json.dumps({"preset": str(preset)})
        run = ["deployment", "run", "facenet-train/facenet-train", "--params", params]
        first = prefect([*run, "--watch", "--watch-timeout", "900"], env, timeout=960)
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", first.stdout).group(1)
        assert flow_run_state(flow_run_id, env) == "FAILED", (tmp_path / "worker.log").read_text()[-3000:]
        assert (tmp_path / "ws" / "cropped" / "tiny" / "detections.parquet").is_file()

        shutil.copy(tmp_path / "ws" / "raw" / "tiny" / "pairs.txt", pairs)
        assert prefect(["flow-run", "retry", flow_run_id], env).returncode == 0
        assert wait_until_final(flow_run_id, env) == "COMPLETED"
        logs = prefect(["flow-run", "logs", flow_run_id], env).stdout
        retried = logs.split("Finished in state Failed")[-1]
        assert retried.count("Finished in state Cached") >= 3  # demo archive, download, manifest
        assert list((tmp_path / "ws" / "runs").glob("*/checkpoints/epoch_1.pt"))

        # Each attempt ran flows/train.py and facenet_core of a clone of the remote at the deployed
        # commit, not of this checkout nor of the folders deployed from.
        loaded = [line.split() for line in marker.read_text().splitlines()]
        deploying = tuple(f"{folder}{os.sep}" for folder in (checkout, plain, REPO))  # deploy loads the flows
        in_runs = [(flow, core) for flow, core in loaded if not flow.startswith(deploying)]
        assert len(in_runs) == 2, loaded
        for flow, core in in_runs:
            clone = Path(flow).parents[1]
            assert Path(core).parents[1] == clone and clone.name.startswith("remote")
            assert not clone.is_relative_to(REPO)
        stop(worker)
        worker = None

        # With no worker: the first training run to be submitted holds the only slot, the second waits.
        waiting = []
        for _ in range(2):
            queued = prefect(run, env)
            waiting.append(re.search(r"UUID: ([0-9a-f-]{36})", queued.stdout).group(1))
        states = []
        for run_id in waiting:
            httpx.post(f"{api}/flow_runs/{run_id}/set_state", json={"state": {"type": "PENDING"}}).raise_for_status()
            states.append(httpx.get(f"{api}/flow_runs/{run_id}").json()["state"])
        assert [state["type"] for state in states] == ["PENDING", "SCHEDULED"]
        assert states[1]["name"] == "AwaitingConcurrencySlot"
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
    assert server.poll() is not None and (worker is None or worker.poll() is not None)
