"""Device rules: full float32 precision around CUDA work, untouched elsewhere."""

import threading

import pytest
import torch

from facenet_core.devices import ieee_float32, resolve_device


def _precisions() -> tuple[str, str]:
    return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision


def test_cuda_work_runs_in_ieee_float32_and_settings_come_back():
    before = _precisions()
    with ieee_float32(torch.device("cuda")):
        assert _precisions() == ("ieee", "ieee")
    assert _precisions() == before
    with pytest.raises(RuntimeError), ieee_float32(torch.device("cuda:0")):
        raise RuntimeError("detection failed")
    assert _precisions() == before


def test_cpu_work_leaves_the_settings_alone():
    before = _precisions()
    with ieee_float32(torch.device("cpu")):
        assert _precisions() == before


def test_overlapping_threads_keep_ieee_until_the_last_one_leaves():
    before = _precisions()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with ieee_float32(torch.device("cuda")):
            first_in.set()
            second_in.wait()
        first_out.set()

    def second():
        first_in.wait()
        with ieee_float32(torch.device("cuda")):
            second_in.set()
            first_out.wait()
            seen["after first left"] = _precisions()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen["after first left"] == ("ieee", "ieee")
    assert _precisions() == before


def test_cuda_without_a_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="device='cuda'"):
        resolve_device("cuda")
