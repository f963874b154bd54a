"""facenet-train with sampling: pk: each epoch trains on its P x K batches, drawn by the pk-batches
stage one epoch ahead and Cached on a rerun."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facenet_core.config import load_config
from facenet_core.data.manifest import read_manifest_labels
from facenet_core.data.pk_batches import generate_pk_batches, load_pk_batches
from flows.train import run_in_process
from tasks import train as train_tasks

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

PK = {"sampling": "pk", "mining": "batch_hard", "pk_identities": 3, "pk_images": 2}


def test_pk_run_trains_on_its_batches_and_reruns_cached(tiny_preset, monkeypatch):
    draws = []
    original = train_tasks.pk_core.draw_and_save

    def counting(manifest, epoch, params, path):
        draws.append(epoch)
        return original(manifest, epoch, params, path)

    monkeypatch.setattr(train_tasks.pk_core, "draw_and_save", counting)
    first = run_in_process(tiny_preset, PK)
    run_dir = Path(first["run_dir"])
    assert sorted(draws) == [0, 1] and [e["epoch"] for e in first["evaluations"]] == [0, 1]
    assert not (run_dir / "triplets").exists()
    manifest = read_manifest_labels(load_config(run_dir / "config.yaml").manifest_path)
    for epoch in (0, 1):
        path = run_dir / "pk_batches" / f"epoch_{epoch}.npy"
        batches = load_pk_batches(path, manifest.fingerprint, pk_identities=3, pk_images=2)
        expected = generate_pk_batches(
            manifest.labels, seed=0, epoch=epoch, iterations_per_epoch=2, pk_identities=3, pk_images=2
        )
        assert np.array_equal(batches, expected)
        checkpoint = torch.load(run_dir / "checkpoints" / f"epoch_{epoch}.pt", weights_only=True)
        assert checkpoint["index_path"] == str(path)
        assert all(torch.isfinite(v).all() for v in checkpoint["model_state_dict"].values() if v.is_floating_point())

    second = run_in_process(tiny_preset, PK)
    assert second["run_key"] == first["run_key"] and sorted(draws) == [0, 1], "the pk-batches stage is Cached"
    assert set(second["stage_states"]) == {"Cached", "Completed"}
    assert second["stage_states"]["Completed"] == 2  # tracking run reopened, registration re-checked


def test_training_triplets_path_is_refused_with_pk(tiny_preset, tmp_path):
    with pytest.raises(ValueError, match="training_triplets_path gives the first epoch's triplets"):
        run_in_process(tiny_preset, {**PK, "training_triplets_path": str(tmp_path / "t.npy")})
