"""Worker pools: the initializer runs in each worker, and no worker outlives a killed parent."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facenet_core.workers import process_pool

REPO = Path(__file__).resolve().parents[2]
PARENT = """
import os, sys, time
from facenet_core.workers import process_pool
pool = process_pool(2, start_method=sys.argv[1])
pids = set()
while len(pids) < 2:  # both workers answered
    pids |= {future.result() for future in [pool.submit(os.getpid) for _ in range(64)]}
print(" ".join(map(str, sorted(pids))), flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state  # a zombie has exited; its reaper just has not collected it


def _set_marker():
    os.environ["FACENET_TEST_MARKER"] = "initialised"


def _marker(_):
    return os.environ.get("FACENET_TEST_MARKER")


def test_only_start_methods_that_make_the_caller_the_parent():
    with pytest.raises(ValueError, match="start_method"):
        process_pool(1, start_method="forkserver")


def test_initializer_runs_in_every_worker():
    with process_pool(2, _set_marker, start_method="fork") as pool:  # fork: this module needs no import
        assert set(pool.map(_marker, range(4))) == {"initialised"}


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_workers_exit_soon_after_their_parent_is_killed(start_method):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, start_method], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and not any(_gone(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in workers)
    finally:
        parent.kill()
