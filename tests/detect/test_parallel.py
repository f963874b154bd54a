"""The crop run's worker pool: started once for every shard of a run, stopped when the run ends, even
when it fails; a pool whose worker died is replaced; a run of one worker crops in the caller's thread."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from facenet_core.detect import parallel
from facenet_core.detect.crop import CropOptions
from facenet_core.detect.parallel import CropPool, crop_pool, run_shard

TWO = CropOptions(image_size=40, batch_size=2, workers=2)


@pytest.fixture
def started(monkeypatch):
    """Each executor a CropPool starts, recorded; one thread stands in for the processes (same lifetime)."""
    executors = []

    def spawn(workers):
        executors.append(ThreadPoolExecutor(1))
        return executors[-1]

    monkeypatch.setattr(parallel, "_spawn_pool", spawn)
    return executors


def test_the_shards_of_a_run_share_one_pool_that_ends_with_the_run(started, tree, tmp_path):
    with CropPool(2) as pool:
        assert started == []  # nothing starts before the first shard
        first = run_shard(tree, tmp_path / "out", ["alice"], TWO, pool=pool)
        second = run_shard(tree, tmp_path / "out", ["bob"], TWO, pool=pool)
    assert (first["ok"], second["ok"]) == (2, 1)
    assert len(started) == 1
    with pytest.raises(RuntimeError, match="shutdown"):
        started[0].submit(os.getpid)
    with pytest.raises(RuntimeError, match="closed"):
        run_shard(tree, tmp_path / "out", ["alice"], TWO, pool=pool)


def test_a_failed_run_stops_its_pool_and_drops_the_shards_not_started(started, tree, tmp_path):
    gate = threading.Event()
    with pytest.raises(KeyError), CropPool(2) as pool:
        busy = pool._running().submit(gate.wait, 10)  # the pool's one worker is busy
        waiting = pool.submit(tree, tmp_path / "out", ["alice"], TWO)
        threading.Timer(0.2, gate.set).start()
        raise KeyError("the run fails")
    assert busy.result() is True and waiting.cancelled()
    assert not (tmp_path / "out").exists()
    with pytest.raises(RuntimeError, match="shutdown"):
        started[0].submit(os.getpid)


def test_one_worker_crops_in_the_callers_thread(started, tree, tmp_path):
    with crop_pool(1) as pool:
        assert pool is None
        assert run_shard(tree, tmp_path / "out", ["alice"], TWO, pool=pool)["ok"] == 2
    with crop_pool(3) as pool:
        assert isinstance(pool, CropPool) and pool.workers == 3
    assert started == []
    with pytest.raises(ValueError, match="at least 2 workers"):
        CropPool(1)


@pytest.mark.slow
def test_worker_processes_serve_every_shard_and_none_outlive_the_run(tree, tmp_path):
    with CropPool(2) as pool:
        run_shard(tree, tmp_path / "out", ["alice"], TWO, pool=pool)
        processes = pool._running()
        workers = list(processes._processes.values())
        run_shard(tree, tmp_path / "out", ["bob"], TWO, pool=pool)
        assert pool._running() is processes and list(processes._processes.values()) == workers

        processes.submit(os._exit, 1).exception()  # a worker dies, the pool with it
        with pytest.raises(BrokenProcessPool):
            processes.submit(os.getpid)
        assert run_shard(tree, tmp_path / "out", ["alice"], TWO, pool=pool)["resumed"] == 2  # to fresh processes
        fresh = pool._running()
        assert fresh is not processes
        workers += list(fresh._processes.values())
    assert not any(worker.is_alive() for worker in workers)

    with pytest.raises(KeyError), CropPool(2) as pool:
        run_shard(tree, tmp_path / "again", ["alice"], TWO, pool=pool)
        workers = list(pool._running()._processes.values())
        raise KeyError("the run fails")
    assert workers and not any(worker.is_alive() for worker in workers)
