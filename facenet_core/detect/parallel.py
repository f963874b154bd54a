"""Many crop shards at once: a whole tree in worker processes, or shards handed one by one to the
worker processes of a run's CropPool by callers that schedule them (the crop flow's threads)."""

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


class CropPool:
    """`workers` crop processes owned by one crop run: started on first use, stopped when the run leaves
    `with CropPool(...)`. Every shard of the run goes to the same processes, which load the networks
    once for all of them; none outlive the run, even when it fails (shards not started yet are then
    cancelled). Threads may hand it shards at the same time (the crop flow's task runner).
    """

    def __init__(self, workers: int):
        if workers < 2:
            raise ValueError(f"a CropPool needs at least 2 workers, got {workers}: crop one worker's shards in place")
        self.workers = workers
        self._lock = threading.Lock()
        self._processes: ProcessPoolExecutor | None = None
        self._closed = False

    def _running(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("this CropPool is closed: its run has ended")
            if self._processes is None:
                self._processes = _spawn_pool(self.workers)
            return self._processes

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._processes is broken:
                self._processes = None
        broken.shutdown(wait=False)

    def submit(self, *crop_shard_args: Any) -> concurrent.futures.Future:
        """`crop_shard(*crop_shard_args)` in one of the processes; its future."""
        return self._running().submit(crop_shard, *crop_shard_args)

    def crop(
        self,
        input_root: str | Path,
        output_root: str | Path,
        identities: list[str],
        options: CropOptions,
        seeds: list[str] | None = None,
    ) -> dict[str, Any]:
        """`crop_shard` of one shard in one of the processes, waiting for its summary."""
        processes = self._running()
        try:
            return processes.submit(crop_shard, input_root, output_root, identities, options, seeds).result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory) and took every shard in flight with it: each of them
            # goes once more to fresh processes, resuming what its dead worker had finished.
            self._replace(processes)
        return self.submit(input_root, output_root, identities, options, seeds).result()

    def close(self, cancel: bool = False) -> None:
        """Stop the processes once their shards are done (`cancel`: shards not started are dropped)."""
        with self._lock:
            self._closed = True
            processes, self._processes = self._processes, None
        if processes is not None:
            processes.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> CropPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.close(cancel=exc_type is not None)


def crop_pool(workers: int) -> contextlib.AbstractContextManager[CropPool | None]:
    """`with crop_pool(workers) as pool:` a CropPool for a run of `workers` > 1, else None (shards are
    cropped in the caller's thread, and nothing needs to travel to a remote task runner)."""
    return CropPool(workers) if workers > 1 else contextlib.nullcontext()


def run_shard(
    input_root: str | Path,
    output_root: str | Path,
    identities: list[str],
    options: CropOptions,
    seeds: list[str] | None = None,
    pool: CropPool | None = None,
) -> dict[str, Any]:
    """`crop_shard` in one of the run's `pool` processes, or in the calling thread without one. Threads
    calling it (the crop flow's task runner) then detect in parallel free of the GIL, and the
    processes load the networks once for all their shards."""
    if pool is None:
        return crop_shard(input_root, output_root, identities, options, seeds)
    return pool.crop(input_root, output_root, identities, options, seeds)


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
        workers = options.worker_processes(len(plan.shards))
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
                pool = stack.enter_context(CropPool(workers))
                report = None if counts_queue is None else counts_queue.put
                shards = zip(plan.shards, plan.seeds, strict=True)
                pending = {pool.submit(input_root, output_root, ids, options, seeds, report) for ids, seeds in shards}
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
