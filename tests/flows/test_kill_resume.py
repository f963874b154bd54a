"""A flow process killed with SIGKILL mid-stage: the rerun completes and trusts no half-written file."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from support.processes import BIN, service_env

from facenet_core.train.checkpoints import load_checkpoint
from flows.train import run_in_process

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def wait_for(predicate, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"flow process exited early with {process.returncode}"
        assert time.monotonic() < deadline, "the flow did not reach the stage to interrupt in time"
        time.sleep(0.05)


def test_sigkill_during_crop_then_rerun_completes(tiny_preset):
    workspace = tiny_preset.parent / "workspace"
    crops = workspace / "cropped" / "tiny"
    process = subprocess.Popen(
        [str(BIN / "facenet"), "run", "--preset", str(tiny_preset)],
        env=service_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(list(crops.glob("*/*.png"))) >= 2, timeout=600, process=process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert not (crops / "detections.parquet").exists()

    summary = run_in_process(tiny_preset)
    table = pd.read_parquet(crops / "detections.parquet")
    ok = table[table["status"] == "ok"]
    assert len(table) == 24 and len(ok) >= 20
    assert sorted(Path(crops, o) for o in ok["output"]) == sorted(crops.glob("*/*.png"))
    checkpoint = load_checkpoint(Path(summary["run_dir"]) / "checkpoints" / "epoch_1.pt")
    assert checkpoint["epoch"] == 1
    assert summary["registered"]["alias"] == "champion"
