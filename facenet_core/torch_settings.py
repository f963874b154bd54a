"""Process-wide torch settings held for a while by many threads at once, then given back.

A `HeldSetting` is a context manager object that any number of threads may enter, nested or
overlapping: the first one in saves the setting and the last one out restores it, so a thread that
leaves early never takes the setting from one still inside, and the process ends with the value it
had before. Two are used: IEEE float32 on CUDA around detection (`facenet_core.devices.ieee_float32`)
and one intra-op thread per crop shard (`facenet_core.detect.crop`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class HeldSetting(Generic[T]):
    """Holds a setting at `value` while any thread is inside `with setting:`.

    `read` and `write` get and set the setting. With `per_thread`, the setting is one that each
    thread keeps a copy of (and that may also set the process default, as torch's thread count
    does): every thread reads it first (taking its copy before anything changes), writes `value` as
    it enters and writes the saved value back as it leaves its outermost `with`. Otherwise the
    setting is global: written once by the first thread in, restored once by the last one out.
    """

    def __init__(self, read: Callable[[], T], write: Callable[[T], None], value: T, per_thread: bool = False):
        self._read = read
        self._write = write
        self._value = value
        self._per_thread = per_thread
        self._lock = threading.Lock()
        self._users = 0
        self._saved: T | None = None
        self._depth = threading.local()

    def __enter__(self) -> HeldSetting[T]:
        if self._per_thread:
            self._read()
        with self._lock:
            if self._users == 0:
                saved = self._read()
                if not self._per_thread:
                    self._write(self._value)
                self._saved = saved
            self._users += 1
        if self._per_thread:
            depth = getattr(self._depth, "value", 0)
            if depth == 0:
                self._write(self._value)
            self._depth.value = depth + 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._users -= 1
            saved = self._saved
            if self._users == 0 and not self._per_thread:
                self._write(saved)
        if self._per_thread:
            self._depth.value -= 1
            if self._depth.value == 0:
                self._write(saved)


def _float32_precisions() -> tuple[str, str]:
    return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision


def _set_float32_precisions(values: tuple[str, str]) -> None:
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = values


# cuDNN convolutions and cuBLAS matmuls in IEEE float32, not TF32 (process-wide settings).
IEEE_FLOAT32 = HeldSetting(_float32_precisions, _set_float32_precisions, ("ieee", "ieee"))

# torch ops of the threads inside on one core each: torch keeps a thread count per thread and a
# process default that set_num_threads also overwrites, so each thread gives back the saved count.
ONE_TORCH_THREAD = HeldSetting(torch.get_num_threads, torch.set_num_threads, 1, per_thread=True)
