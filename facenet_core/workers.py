"""Worker process pools whose workers never outlive the process that started them.

A ProcessPoolExecutor's workers wait on a queue whose write end they hold themselves, so when
their parent is killed (SIGKILL, OOM killer) they keep running, finish their task, writing files
for a run that no longer exists, and then wait forever. Here every worker watches its parent
and exits within a second of its death; atomic writes leave at most a temporary file behind.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

PARENT_POLL_SECONDS = 0.5


def cpu_cores() -> int:
    """The cores this process may run on (all of the machine's where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _start_worker(parent: int, initializer: Callable[[], None] | None) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="parent-watch", daemon=True).start()
    if initializer is not None:
        initializer()


def process_pool(
    workers: int, initializer: Callable[[], None] | None = None, start_method: str = "fork"
) -> ProcessPoolExecutor:
    """A pool of `workers` processes started by "fork" or "spawn" (the caller is their parent: a
    forkserver would be) that run `initializer` first and exit on their own once the caller is gone."""
    if start_method not in ("fork", "spawn"):
        raise ValueError(f"start_method must be 'fork' or 'spawn', got {start_method!r}")
    context = multiprocessing.get_context(start_method)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(), initializer)
    )
