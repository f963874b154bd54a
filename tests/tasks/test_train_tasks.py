"""Per-epoch tasks: their cache keys as typed functions of their parameters, and an epoch the run
folder holds already (trained outside the cache) taken as it is instead of trained again."""

import json

import numpy as np
import pytest
import torch
from prefect import flow

from facenet_core.config import Config
from facenet_core.config.stages import stage_values
from facenet_core.data.triplets import TripletParams, save_triplets
from facenet_core.fileio import sha256_file
from facenet_core.train import engine
from facenet_core.workspace import Workspace
from tasks.caching import output_record_path, stage_key
from tasks.results import EpochCheckpoint, ManifestFile, TripletsFile
from tasks.train import train_epoch_task, train_key, triplets_key

PARAMS = TripletParams(seed=0, iterations_per_epoch=2, batch_size=4, num_human_identities_per_batch=3)


def test_triplets_key_holds_the_manifest_content_epoch_params_and_reused_file(tmp_path):
    manifest = ManifestFile(tmp_path / "m.parquet", "f" * 64)
    key = triplets_key(manifest=manifest, epoch=3, params=PARAMS, reuse=None)
    assert key == {"manifest": "f" * 64, "epoch": 3, "params": PARAMS.__dict__, "reused": None}
    given = tmp_path / "saved.npy"
    given.write_bytes(b"rows")
    assert triplets_key(manifest=manifest, epoch=3, params=PARAMS, reuse=given)["reused"] == sha256_file(given)
    moved = ManifestFile(tmp_path / "elsewhere.parquet", "f" * 64)  # the same content elsewhere: same key
    assert triplets_key(manifest=moved, epoch=3, params=PARAMS, reuse=None) == key


def test_train_key_holds_the_configs_training_fields_and_the_inputs_content(tmp_path):
    config = Config(epochs=3)
    triplets = TripletsFile(tmp_path / "t.npy", "a" * 64, 8)
    first = train_key(config=config, epoch=0, epoch_index=triplets, checkpoint_in=None)
    assert first == {
        "config": stage_values(config, "train-epoch"),
        "epoch": 0,
        "triplets": "a" * 64,
        "manifest": None,  # no sidecar beside t.npy
        "checkpoint_in": None,
    }
    previous = EpochCheckpoint(tmp_path / "epoch_0.pt", "b" * 64, 0)
    assert train_key(config=config, epoch=1, epoch_index=triplets, checkpoint_in=previous)["checkpoint_in"] == "b" * 64
    faster = config.model_copy(update={"num_workers": 7, "eval_batch_size": 3})  # speed only: the same key
    assert train_key(config=faster, epoch=0, epoch_index=triplets, checkpoint_in=None) == first


def test_train_key_tells_apart_identical_rows_into_two_manifests(tmp_path):
    """Another crop of the same people gives a manifest of the same labels: the same index rows, other images."""
    config = Config(epochs=3)
    keys = []
    for fingerprint in ("1" * 64, "2" * 64):
        path = tmp_path / fingerprint[0] / "epoch_0.npy"
        path.parent.mkdir()
        save_triplets(path, np.zeros((4, 3), dtype=np.int32), {"manifest_fingerprint": fingerprint, "epoch": 0})
        index = TripletsFile(path, sha256_file(path), 4)
        keys.append(train_key(config=config, epoch=0, epoch_index=index, checkpoint_in=None))
    assert keys[0]["triplets"] == keys[1]["triplets"]
    assert (keys[0]["manifest"], keys[1]["manifest"]) == ("1" * 64, "2" * 64)


@flow
def take_trained_epoch(workspace: Workspace, epoch: int) -> EpochCheckpoint:
    """The task's body (no cache) for an epoch the run folder holds already."""
    layout = workspace.run_layout("run")
    return train_epoch_task.fn(
        workspace=workspace,
        config=Config(epochs=3),
        epoch=epoch,
        epoch_index=TripletsFile(layout.triplets(epoch), "a" * 64, 8),
        checkpoint_in=None,
        layout=layout,
        already_trained=True,
    )


@pytest.mark.usefixtures("prefect_harness")
def test_an_epoch_trained_outside_the_cache_is_taken_from_the_run_folder(tmp_path):
    workspace = Workspace.at(tmp_path / "ws").ensure()
    layout = workspace.run_layout("run")
    layout.checkpoints.mkdir(parents=True)
    torch.save({"epoch": 1, "model_state_dict": {}}, layout.epoch_checkpoint(1))
    layout.epoch_checkpoint(1).with_suffix(".json").write_text(json.dumps({"epoch": 1, "loss": 0.25}))
    before = layout.epoch_checkpoint(1).stat().st_mtime_ns

    taken = take_trained_epoch(workspace, 1)
    assert taken == EpochCheckpoint(
        layout.epoch_checkpoint(1), sha256_file(layout.epoch_checkpoint(1)), 1, taken.summary
    )
    assert taken.summary == {"epoch": 1, "loss": 0.25}
    assert layout.epoch_checkpoint(1).stat().st_mtime_ns == before  # not trained again

    # An epoch whose weights checkpoint_retention deleted: nothing to hash, nothing recorded as output.
    layout.epoch_checkpoint(1).unlink()
    gone = take_trained_epoch(workspace, 1)
    assert gone.sha256 is None and gone.path == layout.epoch_checkpoint(1) and gone.summary["loss"] == 0.25
    parameters = {
        "config": Config(epochs=3),
        "epoch": 1,
        "epoch_index": TripletsFile(layout.triplets(1), "a" * 64, 8),
        "checkpoint_in": None,
    }
    record = output_record_path(workspace, stage_key("train-epoch", engine.STAGE_VERSION, train_key(**parameters)))
    assert json.loads(record.read_text()) == {"files": {}}
