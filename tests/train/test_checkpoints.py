"""Checkpoint files: seed compatibility, plain types, prefixes, retention, evaluation records."""

import pickle

import pytest
import torch

from facenet_core.config import Config
from facenet_core.models import create_model
from facenet_core.train.checkpoints import (
    SEED_KEYS,
    epoch_path,
    load_checkpoint,
    load_model_from_checkpoint,
    prune_epochs,
    pruned_by_retention,
    record_evaluation,
    save_checkpoint,
    strip_prefixes,
    weights_of_epoch,
)
from facenet_core.train.state import build_state

from .seed_style import as_numpy1_pickle, save_seed_checkpoint


@pytest.mark.parametrize(("architecture", "numpy1"), [("resnet34", True), ("mobilenetv2", False)])
def test_seed_checkpoint_loads_for_evaluation(tmp_path, architecture, numpy1):
    path = tmp_path / "seed.pt"
    net, _ = save_seed_checkpoint(path, architecture)
    if numpy1:
        as_numpy1_pickle(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    model, checkpoint = load_model_from_checkpoint(path)
    assert set(SEED_KEYS) <= set(checkpoint)
    assert type(checkpoint["best_distance_threshold"]) is float
    assert checkpoint["best_distance_threshold"] == 1.25
    assert not any(key.startswith("model.") for key in checkpoint["model_state_dict"])
    assert not model.training
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), net.eval()(images))


@pytest.mark.parametrize("architecture", ["resnet34", "mobilenetv2"])
def test_seed_checkpoint_resumes_with_its_optimiser_state_and_a_new_learning_rate(tmp_path, architecture):
    path = tmp_path / "seed.pt"
    net, optimizer = save_seed_checkpoint(path, architecture, epoch=4)
    config = Config(
        model_architecture=architecture,
        embedding_dimension=16,
        learning_rate=0.01,
        iterations_per_epoch=3,
        channels_last=False,
    )
    state = build_state(config, 5, torch.device("cpu"), path)
    assert state.notes == {
        "learning_rate_previous": 0.075,
        "optimizer_state": "restored",
        "optimizer_state_from": str(path),
    }
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert state.scheduler.last_epoch == 15
    ours = state.optimizer.state_dict()["state"]
    theirs = optimizer.state_dict()["state"]
    assert len(ours) == len(theirs)
    for index, saved in theirs.items():
        torch.testing.assert_close(ours[index]["sum"], saved["sum"])
    for (name, value), (seed_name, seed_value) in zip(
        state.model.state_dict().items(), net.state_dict().items(), strict=True
    ):
        assert seed_name == f"model.{name}"
        torch.testing.assert_close(value, seed_value)


def test_resume_refuses_another_optimizer_or_architecture(tmp_path):
    path = tmp_path / "seed.pt"
    save_seed_checkpoint(path, "mobilenetv2")
    with pytest.raises(ValueError, match="optimizer='adagrad'"):
        build_state(
            Config(model_architecture="mobilenetv2", embedding_dimension=16, optimizer="adam"),
            5,
            torch.device("cpu"),
            path,
        )
    with pytest.raises(ValueError, match="model_architecture='mobilenetv2'"):
        build_state(Config(model_architecture="resnet18", embedding_dimension=16), 5, torch.device("cpu"), path)


def test_wrapper_prefixes_are_stripped():
    state = {"module._orig_mod.fc.weight": 1, "_orig_mod.conv1.weight": 2, "model.bn1.bias": 3, "layer1.x": 4}
    assert strip_prefixes(state) == {"fc.weight": 1, "conv1.weight": 2, "bn1.bias": 3, "layer1.x": 4}


def test_inceptionresnetv2_last_linear_becomes_timm_classif(tmp_path):
    path = tmp_path / "irv2.pt"
    weights = {"model.last_linear.weight": torch.ones(4, 2), "model.conv2d_1a.conv.weight": torch.zeros(1)}
    torch.save({"model_state_dict": weights, "model_architecture": "inceptionresnetv2", "epoch": 0}, path)
    assert set(load_checkpoint(path)["model_state_dict"]) == {"classif.weight", "conv2d_1a.conv.weight"}


def test_missing_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt has no model_state_dict"):
        load_checkpoint(tmp_path / "other.pt")


def _tiny_state(epoch):
    model = create_model("resnet18", 4)
    return {
        "epoch": epoch,
        "model_state_dict": model.state_dict(),
        "model_architecture": "resnet18",
        "embedding_dimension": 4,
        "best_distance_threshold": None,
    }


def test_prune_keeps_the_newest_epochs_and_the_best(tmp_path):
    for epoch in range(5):
        epoch_path(tmp_path, epoch).write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    removed = prune_epochs(tmp_path, 2)
    assert sorted(p.name for p in removed) == ["epoch_0.pt", "epoch_1.pt", "epoch_2.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_3.pt", "epoch_4.pt", "last.pt"]
    assert prune_epochs(tmp_path, None) == []
    save_checkpoint(tmp_path / "best.pt", _tiny_state(3))
    epoch_path(tmp_path, 5).write_bytes(b"x")
    assert [p.name for p in prune_epochs(tmp_path, 1)] == ["epoch_4.pt"]  # epoch 3 is best.pt's


def test_pruned_epochs_are_recognised_and_their_weights_found_in_best(tmp_path):
    for epoch in range(3):
        save_checkpoint(epoch_path(tmp_path, epoch), _tiny_state(epoch))
    save_checkpoint(tmp_path / "last.pt", _tiny_state(2))
    save_checkpoint(tmp_path / "best.pt", _tiny_state(0))
    assert prune_epochs(tmp_path, 1) == [epoch_path(tmp_path, 1)]
    assert pruned_by_retention(epoch_path(tmp_path, 1)) and not pruned_by_retention(epoch_path(tmp_path, 2))
    assert not pruned_by_retention(tmp_path / "other" / "epoch_0.pt")  # no run there
    assert weights_of_epoch(epoch_path(tmp_path, 0), 0) == epoch_path(tmp_path, 0)
    epoch_path(tmp_path, 0).unlink()  # as runs pruned before the best epoch was kept
    assert weights_of_epoch(epoch_path(tmp_path, 0), 0) == tmp_path / "best.pt"
    with pytest.raises(FileNotFoundError, match="epoch_1.pt was deleted"):
        weights_of_epoch(epoch_path(tmp_path, 1), 1)


def test_record_evaluation_stores_threshold_and_promotes_best(tmp_path):
    save_checkpoint(epoch_path(tmp_path, 2), _tiny_state(2))
    save_checkpoint(tmp_path / "last.pt", {**_tiny_state(2), "optimizer_model_state_dict": {"state": {}}})
    epoch_bytes = epoch_path(tmp_path, 2).read_bytes()
    record_evaluation(tmp_path, 2, 1.1, is_best=True)
    assert epoch_path(tmp_path, 2).read_bytes() == epoch_bytes  # a finished stage's output is never rewritten
    assert torch.load(tmp_path / "last.pt", weights_only=True)["best_distance_threshold"] == 1.1
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["best_distance_threshold"] == 1.1
    assert "optimizer_model_state_dict" in best
    save_checkpoint(epoch_path(tmp_path, 3), _tiny_state(3))
    record_evaluation(tmp_path, 3, 0.9, is_best=False)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["best_distance_threshold"] == 1.1
