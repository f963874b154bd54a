"""Resuming from a per-epoch file: optimiser, schedule and RNG restored when the run holds them, a
fresh optimiser said out loud otherwise; the seed's checkpoints still load and resume."""

import logging
import shutil

import pytest
import torch

from facenet_core.config import Config
from facenet_core.train.engine import read_epoch_summary, train_epoch
from facenet_core.train.state import build_state

from .seed_style import save_seed_checkpoint


@pytest.fixture
def first_epoch(tiny_config, tiny_dataset, tmp_path):
    """A run folder after epoch 0 (epoch_0.pt weights only, last.pt the full state)."""
    run_dir = tmp_path / "run"
    train_epoch(tiny_config, 0, tiny_dataset["triplets"][0], None, run_dir)
    return run_dir / "checkpoints"


def _optimizer_sums(state_dict):
    return [entry["sum"] for _, entry in sorted(state_dict["state"].items())]


def test_epoch_file_takes_the_optimizer_schedule_and_rng_of_last_pt(tiny_config, first_epoch):
    epoch_file, last = first_epoch / "epoch_0.pt", first_epoch / "last.pt"
    assert torch.load(epoch_file, weights_only=True)["optimizer_model_state_dict"] is None
    saved = torch.load(last, weights_only=True)

    state = build_state(tiny_config, 1, torch.device("cpu"), epoch_file)

    assert state.notes == {"optimizer_state": "restored", "optimizer_state_from": str(last)}
    ours = _optimizer_sums(state.optimizer.state_dict())
    theirs = _optimizer_sums(saved["optimizer_model_state_dict"])
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not all(torch.all(s == 0.1) for s in ours)  # Adagrad's accumulators moved off their initial 0.1
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    assert state.scheduler.last_epoch == tiny_config.iterations_per_epoch


def test_next_epoch_from_the_epoch_file_equals_resuming_from_last_pt(tiny_config, tiny_dataset, first_epoch):
    """What the flow does (each epoch starts from the previous epoch's file) matches a resume from last.pt."""
    other = first_epoch.parent.parent / "copy"
    shutil.copytree(first_epoch.parent, other)
    via_epoch_file = train_epoch(
        tiny_config, 1, tiny_dataset["triplets"][1], first_epoch / "epoch_0.pt", first_epoch.parent
    )
    via_last = train_epoch(tiny_config, 1, tiny_dataset["triplets"][1], other / "checkpoints" / "last.pt", other)
    a = torch.load(via_epoch_file, weights_only=True)["model_state_dict"]
    b = torch.load(via_last, weights_only=True)["model_state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert read_epoch_summary(via_epoch_file)["optimizer_state"] == "restored"


def test_a_lone_epoch_file_starts_a_fresh_optimizer_and_says_so(tiny_config, first_epoch, tmp_path, caplog):
    lone = tmp_path / "elsewhere" / "epoch_0.pt"
    lone.parent.mkdir()
    shutil.copy(first_epoch / "epoch_0.pt", lone)
    with caplog.at_level(logging.WARNING, logger="facenet_core.train.state"):
        state = build_state(tiny_config, 1, torch.device("cpu"), lone)
    assert state.notes["optimizer_state"] == "fresh"
    assert str(lone) in state.notes["optimizer_state_note"] and "optimizer starts fresh" in caplog.text
    fresh = state.optimizer.state_dict()["state"].values()
    assert all(torch.all(entry["sum"] == 0.1) and entry["step"] == 0 for entry in fresh)  # Adagrad's initial state
    assert state.scheduler.last_epoch == tiny_config.iterations_per_epoch  # schedule still placed at epoch 1


def test_last_pt_of_another_epoch_is_not_borrowed(tiny_config, tiny_dataset, first_epoch):
    train_epoch(tiny_config, 1, tiny_dataset["triplets"][1], first_epoch / "last.pt", first_epoch.parent)
    state = build_state(tiny_config, 1, torch.device("cpu"), first_epoch / "epoch_0.pt")
    assert state.notes["optimizer_state"] == "fresh"


def test_last_pt_with_other_weights_is_not_borrowed(tiny_config, first_epoch):
    last = torch.load(first_epoch / "last.pt", weights_only=True)
    last["model_state_dict"]["fc.weight"] += 1
    torch.save(last, first_epoch / "last.pt")
    state = build_state(tiny_config, 1, torch.device("cpu"), first_epoch / "epoch_0.pt")
    assert state.notes["optimizer_state"] == "fresh"


def test_seed_checkpoint_without_optimizer_state_resumes_with_a_fresh_one(tmp_path):
    """The seed's published checkpoint keys (model_state_dict, embedding_dimension, threshold, ...)."""
    path = tmp_path / "model_resnet34_triplet.pt"
    net, _ = save_seed_checkpoint(path, "resnet34", epoch=4)
    published = torch.load(path, weights_only=False)
    del published["optimizer_model_state_dict"]
    torch.save(published, path)
    config = Config(model_architecture="resnet34", embedding_dimension=16, iterations_per_epoch=3, channels_last=False)
    state = build_state(config, 5, torch.device("cpu"), path)
    assert state.notes["optimizer_state"] == "fresh"
    weights = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    for key, value in net.state_dict().items():
        torch.testing.assert_close(weights[key], value)
