"""--training_triplets_path as the seed: the saved file feeds the run's first epoch only, later epochs
draw their own triplets; a resumed run's first epoch is the one after --resume_path's."""

import json
import shutil

import numpy as np
import torch

from facenet_core.config import Config
from facenet_core.data.manifest import manifest_fingerprint
from facenet_core.data.triplets import load_triplets, sidecar_path
from flows.cli import main

from .test_command import _args


def _used(run_dir, epoch):
    return torch.load(run_dir / "checkpoints" / f"epoch_{epoch}.pt", weights_only=True)["index_path"]


def test_triplets_file_feeds_the_first_epoch_only(tiny_config: Config, tiny_dataset, tmp_path, capsys):
    saved = tiny_dataset["triplets"][2]  # any file drawn for this manifest
    manifest = str(tiny_dataset["manifest"])
    args = _args(tiny_config, "--training_dataset_csv_path", manifest, "--epochs", "2", "--training_triplets_path")
    assert main([*args, str(saved)]) == 0
    run_dir = tmp_path / "workspace" / "runs" / "t"
    assert _used(run_dir, 0) == str(saved)
    drawn = run_dir / "triplets" / "epoch_1.npy"
    assert _used(run_dir, 1) == str(drawn)
    assert not (run_dir / "triplets" / "epoch_0.npy").exists()
    fingerprint = manifest_fingerprint(manifest)
    assert json.loads(sidecar_path(drawn).read_text())["epoch"] == 1
    assert not np.array_equal(load_triplets(drawn, fingerprint), load_triplets(saved, fingerprint))

    # Resuming epoch 0's weights in a new run: that run's first epoch (1) takes the file, epoch 2 draws.
    resume = tmp_path / "epoch_0.pt"
    shutil.copy(run_dir / "checkpoints" / "epoch_0.pt", resume)
    args = _args(tiny_config, "--training_dataset_csv_path", manifest, "--epochs", "3", "--resume_path", str(resume))
    args[args.index("t")] = "resumed"
    assert main([*args, "--training_triplets_path", str(saved)]) == 0
    resumed = tmp_path / "workspace" / "runs" / "resumed"
    assert _used(resumed, 1) == str(saved)
    assert _used(resumed, 2) == str(resumed / "triplets" / "epoch_2.npy")
    out = capsys.readouterr().out
    assert f"warning: epoch 1: {resume} holds no optimizer state" in out  # a lone weights file
    assert "warning: epoch 2" not in out  # epoch 2 continues from epoch 1 with its optimizer
