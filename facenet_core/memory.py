"""Keep freed heap memory in the process, so large CPU tensors are not mapped and zeroed per call.

glibc serves allocations above a (dynamic) threshold with fresh mmap'd pages and trims freed heap
back to the OS; on a machine with transparent huge pages that turns every large activation of a
CPU forward pass into page faults and zeroing. MTCNN's batched CPU passes allocate and free
megabytes per layer, and lose up to half their speed to this. Raising both thresholds keeps the
memory of the largest batch for reuse, at the cost of holding that peak until the process ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where libc is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
