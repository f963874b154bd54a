"""train_epoch end to end on a tiny image tree: files, metrics, resume, retention."""

import pytest
import torch

from facenet_core.config import LRSchedule
from facenet_core.models import create_model
from facenet_core.train.checkpoints import SEED_KEYS
from facenet_core.train.distributed import DistContext
from facenet_core.train.engine import read_epoch_summary, synchronised_batchnorm, train_epoch
from facenet_core.train.state import build_state


def _collect():
    calls = []
    return calls, lambda metrics, step: calls.append((step, metrics))


def test_first_epoch_writes_weights_state_and_summary(tiny_config, tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    calls, on_metrics = _collect()
    out = train_epoch(tiny_config, 0, tiny_dataset["triplets"][0], None, run_dir, on_metrics)

    assert out == run_dir / "checkpoints" / "epoch_0.pt"
    assert [step for step, _ in calls] == [1, 2]
    assert set(calls[0][1]) == {"loss", "kept_triplets", "kept_fraction", "learning_rate", "images_per_second"} | {
        "active_fraction",
        "positive_distance",
        "negative_distance",
    }
    summary = read_epoch_summary(out)
    assert summary["steps"] == 2 and summary["triplets"] == 8 and summary["epoch"] == 0
    assert summary["images"] == 24 and summary["mining"] == "seed"
    assert summary["kept_triplets"] == sum(m["kept_triplets"] for _, m in calls)
    assert summary["loss"] == pytest.approx(sum(m["loss"] for _, m in calls) / 2)
    assert summary["amp"] == "off" and summary["world_size"] == 1

    weights = torch.load(out, weights_only=True)
    assert set(SEED_KEYS) <= set(weights)
    assert weights["optimizer_model_state_dict"] is None and "rng" not in weights
    assert weights["index_path"] == str(tiny_dataset["triplets"][0])
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert last["scheduler"]["last_epoch"] == 2
    assert len(last["optimizer_model_state_dict"]["state"]) > 0
    torch.manual_seed(tiny_config.seed)
    initial = create_model("resnet18", 8).state_dict()
    assert not torch.equal(weights["model_state_dict"]["fc.weight"], initial["fc.weight"])
    torch.testing.assert_close(weights["model_state_dict"]["conv1.weight"], last["model_state_dict"]["conv1.weight"])


@pytest.mark.parametrize("mining", ["batch_hard", "batch_semihard", "batch_all"])
def test_an_epoch_mined_online_reports_mining_metrics(tiny_config, tiny_dataset, tmp_path, mining):
    config = tiny_config.model_copy(update={"mining": mining})
    calls, on_metrics = _collect()
    out = train_epoch(config, 0, tiny_dataset["triplets"][0], None, tmp_path / "run", on_metrics)

    expected = {"loss", "active_fraction", "positive_distance", "negative_distance", "learning_rate"}
    assert set(calls[0][1]) == expected | {"images_per_second"}
    summary = read_epoch_summary(out)
    assert summary["mining"] == mining and summary["images"] == 24 and summary["steps"] == 2
    assert "kept_triplets" not in summary and "triplets" not in summary
    assert 0 < summary["active"] <= summary["considered"]
    assert summary["active_fraction"] == pytest.approx(summary["active"] / summary["considered"])
    assert 0 < summary["positive_distance"] <= 2 and 0 < summary["negative_distance"] <= 2
    assert summary["loss"] == pytest.approx(sum(m["loss"] for _, m in calls) / 2)


def test_resume_applies_a_new_learning_rate_and_prunes(tiny_config, tiny_dataset, tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_config.model_copy(update={"checkpoint_retention": 1})
    first = train_epoch(config, 0, tiny_dataset["triplets"][0], None, run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    resumed = config.model_copy(
        update={"learning_rate": 0.2, "lr_schedule": LRSchedule(type="step", milestones=[1], gamma=0.5)}
    )
    second = train_epoch(resumed, 1, tiny_dataset["triplets"][1], last, run_dir)

    summary = read_epoch_summary(second)
    assert summary["learning_rate_previous"] == pytest.approx(0.075)
    assert summary["learning_rate"] == pytest.approx(0.1)
    assert not first.exists() and second.exists()
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 1
    assert state["scheduler"]["base_lrs"] == [pytest.approx(0.2)]


def test_resume_restores_the_rng_and_continues_deterministically(tiny_config, tiny_dataset, tmp_path):
    train_epoch(tiny_config, 0, tiny_dataset["triplets"][0], None, tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    saved_rng = torch.load(last, weights_only=True)["rng"]["torch"]
    build_state(tiny_config, 1, torch.device("cpu"), last)
    assert torch.equal(torch.get_rng_state(), saved_rng)

    outs = [train_epoch(tiny_config, 1, tiny_dataset["triplets"][1], last, tmp_path / name) for name in ("a", "b")]
    first, second = (torch.load(p, weights_only=True)["model_state_dict"] for p in outs)
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)


def test_missing_manifest_setting_is_a_clear_error(tiny_config, tiny_dataset, tmp_path):
    config = tiny_config.model_copy(update={"manifest_path": None})
    with pytest.raises(ValueError, match="manifest_path"):
        train_epoch(config, 0, tiny_dataset["triplets"][0], None, tmp_path / "run")


@pytest.mark.parametrize(("device", "world_size", "synced"), [("cuda", 2, True), ("cpu", 2, False), ("cuda", 1, False)])
def test_batchnorm_is_synchronised_only_across_gpus(device, world_size, synced):
    model = create_model("resnet18", 8)
    batchnorms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    params, keys = {name: p for name, p in model.named_parameters()}, set(model.state_dict())
    ctx = DistContext(rank=0, world_size=world_size, local_rank=0, device=torch.device(device))

    converted = synchronised_batchnorm(model, ctx)

    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules()) == (batchnorms if synced else 0)
    assert set(converted.state_dict()) == keys  # checkpoints load either way
    assert all(p is params[name] for name, p in converted.named_parameters())  # the optimizer's tensors
