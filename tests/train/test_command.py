"""`facenet train`: epochs on a manifest, triplets per epoch, rerun resumes, seed checkpoint start."""

import pytest
import torch

from flows.cli import main

from .seed_style import save_seed_checkpoint


def _args(tiny_config, *extra):
    fields = (
        "workspace",
        "model_architecture",
        "embedding_dimension",
        "image_size",
        "batch_size",
        "iterations_per_epoch",
        "num_human_identities_per_batch",
        "num_workers",
        "margin",
    )
    args = ["train", "--run_name", "t"]
    for name in fields:
        args += [f"--{name}", str(getattr(tiny_config, name))]
    return [*args, *extra]


@pytest.mark.slow
def test_train_runs_epochs_and_a_rerun_continues(tiny_config, tiny_dataset, tmp_path, capsys):
    manifest = str(tiny_dataset["manifest"])
    assert main(_args(tiny_config, "--training_dataset_csv_path", manifest, "--epochs", "1")) == 0
    run_dir = tmp_path / "workspace" / "runs" / "t"
    first = (run_dir / "checkpoints" / "epoch_0.pt").stat().st_mtime_ns
    assert (run_dir / "triplets" / "epoch_0.npy").is_file() and (run_dir / "config.yaml").is_file()

    assert main(_args(tiny_config, "--training-dataset-csv-path", manifest, "--epochs", "2")) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "at epoch 1" in out and "epoch 1: loss" in out
    assert (run_dir / "checkpoints" / "epoch_0.pt").stat().st_mtime_ns == first
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1

    assert main(_args(tiny_config, "--training_dataset_csv_path", manifest, "--epochs", "2")) == 0
    assert "all 2 epochs are trained" in capsys.readouterr().out


@pytest.mark.slow
def test_train_from_dataroot_resumes_a_seed_checkpoint_with_a_new_learning_rate(
    tiny_config, tiny_dataset, tmp_path, capsys
):
    seed_checkpoint = tmp_path / "seed.pt"
    save_seed_checkpoint(seed_checkpoint, "mobilenetv2", embedding_dimension=8, epoch=0)
    images = tiny_dataset["manifest"].parent / "images"
    args = _args(
        tiny_config,
        "--dataroot",
        str(images),
        "--epochs",
        "2",
        "--resume_path",
        str(seed_checkpoint),
        "--learning_rate",
        "0.01",
        "--model_architecture",
        "mobilenetv2",
    )
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "learning rate changed from 0.075" in out
    assert (tmp_path / "workspace" / "manifests" / "images.parquet").is_file()
    state = torch.load(tmp_path / "workspace" / "runs" / "t" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["model_architecture"] == "mobilenetv2"


def test_train_without_data_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--workspace", str(tmp_path)]) == 2
    assert "--manifest_path" in capsys.readouterr().err


@pytest.mark.slow
def test_train_with_online_mining_prints_the_active_share(tiny_config, tiny_dataset, capsys):
    manifest = str(tiny_dataset["manifest"])
    args = _args(tiny_config, "--training_dataset_csv_path", manifest, "--epochs", "1", "--mining", "batch_all")
    assert main(args) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch 0: loss"))
    assert "batch_all: " in line and "% active" in line and "kept triplets" not in line
