"""Held settings: saved by the first user in, restored by the last one out, nested or in threads; the
per-thread kind (torch's thread count) given back by each thread as it leaves."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from facenet_core.torch_settings import ONE_TORCH_THREAD, HeldSetting


class Store:
    """A global setting that records every write."""

    def __init__(self, value):
        self.value, self.writes = value, []

    def write(self, value):
        self.value = value
        self.writes.append(value)


def held(store, per_thread=False):
    return HeldSetting(lambda: store.value, store.write, "held", per_thread=per_thread)


def test_nested_entries_write_once_and_restore_the_previous_value_once():
    store = Store("before")
    setting = held(store)
    with setting:
        with setting:
            assert store.value == "held"
        assert store.value == "held"
    assert store.value == "before" and store.writes == ["held", "before"]
    store.value = "changed meanwhile"
    with setting:
        pass
    assert store.value == "changed meanwhile"  # saved afresh by the next first user


def test_an_exception_inside_restores_the_value():
    store = Store(7)
    with pytest.raises(KeyError), held(store):
        raise KeyError("fails inside")
    assert store.value == 7


def test_overlapping_threads_keep_the_value_until_the_last_one_leaves():
    store = Store("before")
    setting = held(store)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with setting:
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with setting:
            second_in.set()
            first_out.wait(10)
            seen["after the first left"] = store.value

    with ThreadPoolExecutor(2) as threads:
        for future in [threads.submit(first), threads.submit(second)]:
            future.result(20)
    assert seen["after the first left"] == "held"
    assert store.value == "before" and store.writes == ["held", "before"]


def test_a_per_thread_setting_is_given_back_by_each_thread_as_it_leaves():
    store = Store("before")
    setting = held(store, per_thread=True)
    with setting:
        with setting:
            pass
        assert store.value == "held"  # the inner exit keeps the outer one's value
    assert store.value == "before"


def test_overlapping_shards_in_threads_restore_the_torch_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()

    def shard_a():
        with ONE_TORCH_THREAD:
            a_inside.set()
            b_inside.wait(10)
            inside = torch.get_num_threads()
        a_left.set()
        return inside

    def shard_b():  # enters after A, leaves after A: the order that used to leave one thread behind
        a_inside.wait(10)
        with ONE_TORCH_THREAD:
            b_inside.set()
            a_left.wait(10)
            return torch.get_num_threads()

    def alone():  # a later shard in A's thread, the first one in again
        with ONE_TORCH_THREAD:
            inside = torch.get_num_threads()
        return inside, torch.get_num_threads()

    try:
        with ThreadPoolExecutor(1) as thread_a, ThreadPoolExecutor(1) as thread_b:
            first, second = thread_a.submit(shard_a), thread_b.submit(shard_b)
            assert (first.result(20), second.result(20)) == (1, 1)
            assert thread_a.submit(alone).result(20) == (1, 2)
            assert thread_b.submit(torch.get_num_threads).result(20) == 2
        with ThreadPoolExecutor(1) as fresh:  # e.g. the training thread
            assert fresh.submit(torch.get_num_threads).result(20) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
