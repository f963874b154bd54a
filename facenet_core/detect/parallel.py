"""Many crop shards at once: a whole tree in worker processes, or shards handed one by one to a
long-lived pool of worker processes by callers that schedule them (the crop flow's threads)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import repeat
from pathlib import Path
from typing import Any

import cv2
import torch

from facenet_core.detect.crop import COUNT_KEYS, crop_shard
from facenet_core.detect.options import CropOptions
from facenet_core.detect.shards import list_shards, shard_id
from facenet_core.detect.table import DETECTIONS, merge_detections, write_table
from facenet_core.workers import process_pool


def _init_worker() -> None:
    """One process per core: keep torch and OpenCV to one thread each."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _spawn_pool(workers: int) -> ProcessPoolExecutor:
    return process_pool(workers, _init_worker, start_method="spawn")


_shared_pool: tuple[int, ProcessPoolExecutor] | None = None
_shared_pool_lock = threading.Lock()


def _shard_processes(workers: int) -> ProcessPoolExecutor:
    """The process's long-lived pool of `workers` crop processes (replaced when the count changes)."""
    global _shared_pool
    with _shared_pool_lock:
        if _shared_pool is None or _shared_pool[0] != workers:
            if _shared_pool is not None:
                _shared_pool[1].shutdown(wait=False)
            _shared_pool = (workers, _spawn_pool(workers))
        return _shared_pool[1]


def _drop_shard_processes(pool: ProcessPoolExecutor) -> None:
    global _shared_pool
    with _shared_pool_lock:
        if _shared_pool is not None and _shared_pool[1] is pool:
            _shared_pool = None
    pool.shutdown(wait=False)


def shutdown_shard_processes() -> None:
    """Stop the worker processes `run_shard` started, if any (the next call starts new ones)."""
    global _shared_pool
    with _shared_pool_lock:
        shared, _shared_pool = _shared_pool, None
    if shared is not None:
        shared[1].shutdown()


def run_shard(
    input_root: str | Path, output_root: str | Path, identities: list[str], options: CropOptions
) -> dict[str, Any]:
    """`crop_shard` in one of `options.workers` long-lived worker processes, or in the calling thread
    when `workers` is 1. Threads calling it (the crop flow's task runner) then detect in parallel
    free of the GIL, and the processes load the networks once for all their shards."""
    workers = options.resolved_workers()
    if workers == 1:
        return crop_shard(input_root, output_root, identities, options)
    pool = _shard_processes(workers)
    try:
        return pool.submit(crop_shard, input_root, output_root, identities, options).result()
    except BrokenProcessPool:
        # A worker died (killed, out of memory) and took every shard in flight with it: each of them
        # goes once more to fresh processes, resuming what its dead worker had finished.
        _drop_shard_processes(pool)
    return _shard_processes(workers).submit(crop_shard, input_root, output_root, identities, options).result()


def crop_tree(
    input_root: str | Path, output_root: str | Path, options: CropOptions, shard_size: int = 256
) -> dict[str, Any]:
    """Crop a whole tree of identity folders (shards in worker processes); write detections.parquet."""
    shards = list_shards(input_root, shard_size)
    workers = min(options.resolved_workers(), len(shards))
    totals: Counter = Counter()
    if workers <= 1:
        for identities in shards:
            counts = crop_shard(input_root, output_root, identities, options)
            totals.update({key: counts[key] for key in COUNT_KEYS})
    else:
        with _spawn_pool(workers) as pool:
            for counts in pool.map(crop_shard, repeat(input_root), repeat(output_root), shards, repeat(options)):
                totals.update({key: counts[key] for key in COUNT_KEYS})
    ids = [shard_id(identities) for identities in shards]
    if ids:
        detections = merge_detections(output_root, ids)
    else:
        detections = write_table(Path(output_root) / DETECTIONS, [], options.output_options())
    return {key: totals[key] for key in COUNT_KEYS} | {"shards": len(shards), "detections": str(detections)}
