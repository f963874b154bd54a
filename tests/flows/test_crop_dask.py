"""The crop flow's shards on a real Dask cluster (scheduler + worker on 127.0.0.1) with a Prefect server."""

import subprocess
import sys

import pandas as pd
import pytest
from support.processes import BIN, free_port, prefect_server, service_env, start, stop, wait_for_port

from facenet_core.synthetic.demo import generate_identities

pytestmark = pytest.mark.slow

CROP_SCRIPT = """
import dataclasses, json, sys
from pathlib import Path
from facenet_core.detect.options import CropOptions
from facenet_core.workspace import Workspace
from flows.crop import run_crop
options = CropOptions(device="cpu")
detections = run_crop(options, Workspace.at(sys.argv[1]), Path(sys.argv[3]), Path(sys.argv[4]), 2, sys.argv[2])
print(json.dumps(dataclasses.asdict(detections), default=str))
"""


def test_crop_shards_run_on_dask_workers(tmp_path):
    raw = generate_identities(tmp_path / "raw", num_identities=4, images_per_identity=3, seed=5)
    server, env = prefect_server(tmp_path)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = worker = None
    try:
        dask_env = service_env(PREFECT_API_URL=env["PREFECT_API_URL"], PREFECT_HOME=env["PREFECT_HOME"])
        scheduler = start(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            dask_env,
            tmp_path / "scheduler.log",
        )
        wait_for_port(port, timeout=120, process=scheduler)
        worker = start(
            [str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "2", "--no-dashboard"],
            dask_env,
            tmp_path / "worker.log",
        )
        out = tmp_path / "cropped"
        done = subprocess.run(
            [sys.executable, "-c", CROP_SCRIPT, str(tmp_path / "ws"), address, str(raw), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]

        from distributed import Client

        with Client(address, timeout=60) as client:
            prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert "crop_shard_task" in prefixes, prefixes  # the shard tasks ran on the Dask worker
        table = pd.read_parquet(out / "detections.parquet")
        assert len(table) == 12 and len(list((out / ".shards").glob("*.parquet"))) == 2
        ok = table[table["status"] == "ok"]
        assert len(ok) >= 10 and all((out / o).is_file() for o in ok["output"])
    finally:
        for process in (worker, scheduler, server):
            if process is not None:
                stop(process)
    assert all(p.poll() is not None for p in (worker, scheduler, server))
