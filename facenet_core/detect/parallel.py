"""Many crop shards at once: a whole tree in worker processes, or shards handed one by one to a
long-lived pool of worker processes by callers that schedule them (the crop flow's threads)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import queue
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import cv2
import torch

from facenet_core.detect.crop import COUNT_KEYS, crop_shard, image_count
from facenet_core.detect.folder import check_folders, drop_unneeded, output_lock, plan_crop, remove_root_temporaries
from facenet_core.detect.options import CropOptions
from facenet_core.detect.shards import NOT_UTF8_FOLDER, input_folder
from facenet_core.detect.table import DETECTIONS, empty_row, merge_detections, write_table
from facenet_core.workers import process_pool


class Progress(Protocol):
    """What `crop_tree` reports progress to: a `tqdm` bar, or anything with these two methods."""

    def reset(self, total: int) -> object: ...

    def update(self, n: int) -> object: ...


# How often crop_tree moves the bar with what its worker processes report.
PROGRESS_SECONDS = 0.5


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
    input_root: str | Path,
    output_root: str | Path,
    identities: list[str],
    options: CropOptions,
    seeds: list[str] | None = None,
) -> dict[str, Any]:
    """`crop_shard` in one of `options.workers` long-lived worker processes, or in the calling thread
    when `workers` is 1. Threads calling it (the crop flow's task runner) then detect in parallel
    free of the GIL, and the processes load the networks once for all their shards."""
    workers = options.resolved_workers()
    if workers == 1:
        return crop_shard(input_root, output_root, identities, options, seeds)
    pool = _shard_processes(workers)
    try:
        return pool.submit(crop_shard, input_root, output_root, identities, options, seeds).result()
    except BrokenProcessPool:
        # A worker died (killed, out of memory) and took every shard in flight with it: each of them
        # goes once more to fresh processes, resuming what its dead worker had finished.
        _drop_shard_processes(pool)
    return _shard_processes(workers).submit(crop_shard, input_root, output_root, identities, options, seeds).result()


def _drain(counts: queue.Queue, progress: Progress) -> None:
    """Advance `progress` by every count waiting in the queue."""
    with contextlib.suppress(queue.Empty):
        while True:
            progress.update(counts.get_nowait())


def crop_tree(
    input_root: str | Path,
    output_root: str | Path,
    options: CropOptions,
    shard_size: int = 256,
    wait: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Crop a whole tree of identity folders (shards in worker processes); write detections.parquet.

    Holds the output folder's lock throughout: another crop of the same folder waits for it (`wait`)
    or stops with a UserError. Shards resume from every earlier table of the folder; at the end the
    tables no current shard needs are dropped with the crops only they listed (`dropped`, `removed`).

    `progress` is reset to the number of images, then advanced image by image (batch by batch); worker
    processes send their counts through a queue that this process reads every PROGRESS_SECONDS.
    """
    check_folders(input_root, output_root)
    input_folder(input_root)  # a missing input is named before an output folder is made
    with output_lock(output_root, wait):
        cleaned = remove_root_temporaries(output_root)
        plan = plan_crop(input_root, output_root, shard_size)
        totals: Counter = Counter(cleaned=cleaned)
        workers = min(options.resolved_workers(), len(plan.shards))
        if progress is not None:
            progress.reset(total=image_count(input_root, plan.shards))
        if workers <= 1:
            advance = None if progress is None else progress.update
            for identities, seeds in zip(plan.shards, plan.seeds, strict=True):
                counts = crop_shard(input_root, output_root, identities, options, seeds, advance)
                totals.update({key: counts[key] for key in COUNT_KEYS})
        else:
            with contextlib.ExitStack() as stack:
                counts_queue = None
                if progress is not None:  # entered first, left last: the workers are gone before it
                    counts_queue = stack.enter_context(multiprocessing.get_context("spawn").Manager()).Queue()
                pool = stack.enter_context(_spawn_pool(workers))
                report = None if counts_queue is None else counts_queue.put
                shards = zip(plan.shards, plan.seeds, strict=True)
                pending = {
                    pool.submit(crop_shard, input_root, output_root, ids, options, seeds, report)
                    for ids, seeds in shards
                }
                while pending:
                    finished, pending = concurrent.futures.wait(
                        pending, timeout=PROGRESS_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                    if counts_queue is not None:
                        _drain(counts_queue, progress)
                    for future in finished:
                        counts = future.result()
                        totals.update({key: counts[key] for key in COUNT_KEYS})
        totals.update(unreadable=len(plan.rejected), bad_name=sum(r == NOT_UTF8_FOLDER for _, r in plan.rejected))
        if plan.shards:
            detections = merge_detections(output_root, plan.ids, plan.rejected)
        else:
            rows = [empty_row(source, "unreadable", reason) for source, reason in plan.rejected]
            detections = write_table(Path(output_root) / DETECTIONS, rows, options.output_options())
        dropped = drop_unneeded(output_root, plan.ids)
    totals["removed"] += dropped["removed"]
    summary = {key: totals[key] for key in COUNT_KEYS}
    return summary | {"dropped": dropped["dropped"], "shards": len(plan.shards), "detections": str(detections)}
