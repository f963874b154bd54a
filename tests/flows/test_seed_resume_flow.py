"""facenet-train as the seed: --training_triplets_path feeds the run's first epoch only; resuming from
a file without optimiser state is said in the run's tags."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from support.tiny import TINY

from facenet_core.config import load_config
from facenet_core.data.manifest import read_manifest
from facenet_core.data.triplets import generate_triplets, save_triplets, sidecar_path
from flows.train import run_in_process
from tasks.train import TAG_FRESH_OPTIMIZER

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def _triplets_used(run_dir: Path, epoch: int) -> str:
    return torch.load(run_dir / "checkpoints" / f"epoch_{epoch}.pt", weights_only=True)["index_path"]


def test_triplets_file_first_epoch_only_and_fresh_optimizer_tagged(tiny_preset, tmp_path):
    first = run_in_process(tiny_preset, {"run_name": "drawn"})
    drawn = Path(first["run_dir"])
    manifest = read_manifest(load_config(drawn / "config.yaml").manifest_path)
    params = {name: TINY[name] for name in ("iterations_per_epoch", "batch_size", "num_human_identities_per_batch")}
    rows = generate_triplets(manifest.labels, seed=7, epoch=0, **params)  # a file no run of seed 0 draws
    saved = save_triplets(tmp_path / "saved.npy", rows, {"manifest_fingerprint": manifest.fingerprint, "seed": 7})
    tags = MlflowClient(first["tracking_uri"]).get_run(first["tracking_run_id"]).data.tags
    assert TAG_FRESH_OPTIMIZER not in tags  # epoch 1 continued epoch 0's optimizer (from last.pt)

    reused = run_in_process(tiny_preset, {"run_name": "reused", "training_triplets_path": str(saved)})
    run_dir = Path(reused["run_dir"])
    assert _triplets_used(run_dir, 0) == str(saved)
    drawn_for_1 = Path(_triplets_used(run_dir, 1))
    assert drawn_for_1 != saved and json.loads(sidecar_path(drawn_for_1).read_text())["epoch"] == 1
    assert not (run_dir / "triplets" / "epoch_0.npy").exists()

    lone = tmp_path / "lone" / "epoch_0.pt"
    lone.parent.mkdir()
    shutil.copy(drawn / "checkpoints" / "epoch_0.pt", lone)
    overrides = {"run_name": "resumed", "resume_path": str(lone), "training_triplets_path": str(saved)}
    resumed = run_in_process(tiny_preset, overrides)
    resumed_dir = Path(resumed["run_dir"])
    assert _triplets_used(resumed_dir, 1) == str(saved)  # the run's first epoch is 1
    tags = MlflowClient(resumed["tracking_uri"]).get_run(resumed["tracking_run_id"]).data.tags
    assert tags[TAG_FRESH_OPTIMIZER].startswith(f"epoch 1: {lone} holds no optimizer state")


def test_the_flow_continues_a_run_that_facenet_train_went_on_with(tiny_preset):
    """One resume rule: epochs the run folder holds (here trained by `facenet train`, outside the
    flow's cache) are taken as they are, not trained again."""
    from flows.cli import main

    first = run_in_process(tiny_preset, {"run_name": "shared", "epochs": 1})
    run_dir = Path(first["run_dir"])
    manifest = load_config(run_dir / "config.yaml").manifest_path
    assert main(["train", "--preset", str(tiny_preset), "--run_name", "shared", "--manifest_path", manifest]) == 0
    epoch_1 = run_dir / "checkpoints" / "epoch_1.pt"
    trained_by_command = epoch_1.stat().st_mtime_ns

    second = run_in_process(tiny_preset, {"run_name": "shared"})
    assert epoch_1.stat().st_mtime_ns == trained_by_command  # taken from the folder, not trained again
    assert [e["epoch"] for e in second["evaluations"]] == [0, 1]
    assert second["registered"]["epoch"] in (0, 1)
