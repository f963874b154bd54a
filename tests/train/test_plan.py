"""The run plan: one resume rule (the later of resume_path and the run's last.pt), the run's files
named by RunLayout, and an epoch's triplets drawn and saved by one function."""

import json
from pathlib import Path

import pytest
import torch

from facenet_core.data.manifest import read_manifest
from facenet_core.data.triplets import TripletParams, draw_and_save, generate_triplets, load_triplets, sidecar_path
from facenet_core.train.plan import plan_run
from facenet_core.workspace import RunLayout, Workspace, run_key


def _checkpoint(path: Path, epoch: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "model_state_dict": {}}, path)
    return path


@pytest.fixture
def workspace(tiny_config) -> Workspace:
    return Workspace.from_config(tiny_config).ensure()


def test_run_layout_names_every_file_of_a_run(tmp_path):
    layout = Workspace.at(tmp_path).run_layout("r1")
    run = tmp_path.resolve() / "runs" / "r1"
    assert layout.run_dir == run and layout.config == run / "config.yaml"
    assert layout.epoch_checkpoint(3) == run / "checkpoints" / "epoch_3.pt"
    assert (layout.last, layout.best) == (run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt")
    assert layout.triplets(2) == run / "triplets" / "epoch_2.npy"
    assert (layout.reports, layout.launch) == (run / "reports", run / "launch")
    assert layout.launch_config(1) == run / "launch" / "epoch_1.config.yaml"
    assert layout.launch_metrics(1) == run / "launch" / "epoch_1.metrics.jsonl"
    assert RunLayout.of_checkpoint(layout.epoch_checkpoint(3)) == layout == RunLayout(run)
    with pytest.raises(ValueError):
        Workspace.at(tmp_path).run_layout("../elsewhere")


def test_a_new_run_starts_at_epoch_zero(tiny_config, workspace):
    plan = plan_run(tiny_config, "f" * 64, workspace)
    assert plan.run_key == run_key(tiny_config, "f" * 64) and plan.run_dir == workspace.runs / plan.run_key
    assert (plan.began, plan.first_epoch, plan.resume_checkpoint, plan.start_checkpoint) == (0, 0, None, None)
    assert list(plan.trained) == [] and list(plan.remaining) == [0, 1, 2]


def test_a_run_continues_after_its_last_checkpoint(tiny_config, workspace):
    layout = plan_run(tiny_config, "f" * 64, workspace).layout
    _checkpoint(layout.last, 1)
    plan = plan_run(tiny_config, "f" * 64, workspace)
    assert (plan.began, plan.first_epoch, plan.resume_checkpoint) == (0, 2, layout.last)
    assert list(plan.trained) == [0, 1] and list(plan.remaining) == [2]
    _checkpoint(layout.last, 2)
    assert list(plan_run(tiny_config, "f" * 64, workspace).remaining) == []


def test_the_later_of_resume_path_and_last_pt_wins(tiny_config, workspace, tmp_path):
    resume = _checkpoint(tmp_path / "seed.pt", 0)
    config = tiny_config.model_copy(update={"resume_path": str(resume), "epochs": 5})
    plan = plan_run(config, "f" * 64, workspace)
    assert (plan.began, plan.first_epoch, plan.resume_checkpoint, plan.start_checkpoint) == (1, 1, resume, resume)

    _checkpoint(plan.layout.last, 2)  # the run went on past the resumed file
    plan = plan_run(config, "f" * 64, workspace)
    assert (plan.began, plan.first_epoch, plan.resume_checkpoint) == (1, 3, plan.layout.last)
    assert list(plan.trained) == [1, 2] and list(plan.remaining) == [3, 4]

    later = _checkpoint(tmp_path / "later.pt", 3)  # a resume_path past last.pt
    plan = plan_run(config.model_copy(update={"resume_path": str(later)}), "f" * 64, workspace)
    assert (plan.began, plan.first_epoch, plan.resume_checkpoint) == (4, 4, later)

    tie = _checkpoint(tmp_path / "tie.pt", 2)  # the same epoch: resume_path, as given
    plan = plan_run(config.model_copy(update={"resume_path": str(tie)}), "f" * 64, workspace)
    assert (plan.first_epoch, plan.resume_checkpoint) == (3, tie)


def test_a_missing_resume_path_is_named(tiny_config, workspace, tmp_path):
    config = tiny_config.model_copy(update={"resume_path": str(tmp_path / "nowhere.pt")})
    with pytest.raises(FileNotFoundError, match="nowhere.pt does not exist"):
        plan_run(config, "f" * 64, workspace)


def test_draw_and_save_writes_the_epochs_triplets_with_their_sidecar(tiny_config, tiny_dataset, tmp_path):
    manifest = read_manifest(tiny_dataset["manifest"])
    params = TripletParams.from_config(tiny_config)
    assert params == TripletParams(seed=0, iterations_per_epoch=2, batch_size=4, num_human_identities_per_batch=3)
    count = draw_and_save(manifest, 1, params, tmp_path / "epoch_1.npy")
    rows = load_triplets(tmp_path / "epoch_1.npy", manifest.fingerprint)
    assert count == len(rows) == 8
    expected = generate_triplets(
        manifest.labels, seed=0, epoch=1, iterations_per_epoch=2, batch_size=4, num_human_identities_per_batch=3
    )
    assert (rows == expected).all()
    sidecar = json.loads(sidecar_path(tmp_path / "epoch_1.npy").read_text())
    assert sidecar["manifest_fingerprint"] == manifest.fingerprint and sidecar["epoch"] == 1
    assert sidecar["num_human_identities_per_batch"] == 3 and sidecar["num_triplets"] == 8
