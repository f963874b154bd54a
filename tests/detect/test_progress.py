"""Crop progress: the callback's counts add up to the images, the bar's total is the image count,
the command's bar appears on a terminal only and its summary gives images/s."""

import io
import json
import os
import sys

import pytest

from facenet_core.detect.crop import CropOptions, crop_shard, image_count, images_of
from facenet_core.detect.parallel import crop_tree
from facenet_core.detect.shards import list_shards
from flows.cli import main

OPTIONS = CropOptions(image_size=40, batch_size=2, workers=1)
IMAGES = 6  # tree: alice/a.jpg, alice/a.png, bob/{blank,broken,face,tiny} (notes.txt is no image)


class Recorder:
    """A tqdm stand-in that keeps what crop_tree reports."""

    def __init__(self):
        self.totals, self.steps = [], []

    def reset(self, total):
        self.totals.append(total)

    def update(self, n):
        self.steps.append(n)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_image_count_lists_names_only(tree):
    assert image_count(tree, list_shards(tree, 1)) == IMAGES
    assert image_count(tree, [["alice"], ["gone"]]) == 2


def test_shard_callback_counts_add_up_to_its_images(tree, tmp_path):
    steps = []
    counts = crop_shard(tree, tmp_path / "out", ["bob"], OPTIONS, progress=steps.append)
    assert sum(steps) == images_of(counts) == 4
    assert len(steps) >= 3  # unreadable and too-small images one by one, then the batch
    rerun = []
    counts = crop_shard(tree, tmp_path / "out", ["bob"], OPTIONS, progress=rerun.append)
    assert counts["resumed"] == 4 and rerun == [4]  # kept rows are reported at once


def test_tree_progress_totals_match_the_summary(tree, tmp_path):
    bar = Recorder()
    summary = crop_tree(tree, tmp_path / "out", OPTIONS, shard_size=1, progress=bar)
    assert bar.totals == [IMAGES]
    assert sum(bar.steps) == images_of(summary) == IMAGES


@pytest.mark.slow
def test_worker_processes_report_progress_batch_by_batch(tree, tmp_path):
    bar = Recorder()
    two = CropOptions(image_size=40, batch_size=2, workers=2)
    summary = crop_tree(tree, tmp_path / "out", two, shard_size=1, progress=bar)
    assert bar.totals == [IMAGES]
    assert sorted(bar.steps) == [1, 1, 2, 2]  # alice's batch; bob's unreadable, too small, then batch
    assert images_of(summary) == IMAGES


def _crop(tree, out, *extra):
    return main(["crop", str(tree), str(out), "--workers", "1", "--device", "cpu", "--image-size", "32", *extra])


def test_command_bar_on_a_terminal_with_rate_and_summary(tree, tmp_path, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert _crop(tree, tmp_path / "out") == 0
    drawn = terminal.getvalue()
    assert f"{IMAGES}/{IMAGES}" in drawn and "crop" in drawn
    assert "img/s" in drawn or "s/img" in drawn  # tqdm turns the rate over below one image a second
    summary = json.loads(capsys.readouterr().out)
    assert images_of(summary) == IMAGES
    seconds, rate = summary["seconds"], summary["images_per_second"]  # both rounded to 0.1
    assert IMAGES / (seconds + 0.05) - 0.05 <= rate <= IMAGES / max(seconds - 0.05, 1e-9) + 0.05


def test_command_bar_off_without_terminal_or_with_no_progress(tree, tmp_path, monkeypatch, capsys):
    assert _crop(tree, tmp_path / "a") == 0
    assert "/6" not in capsys.readouterr().err  # pytest's capture is no terminal
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert _crop(tree, tmp_path / "b", "--no-progress") == 0
    assert f"{IMAGES}/{IMAGES}" not in terminal.getvalue()
    assert os.path.isfile(tmp_path / "b" / "detections.parquet")
