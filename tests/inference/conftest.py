"""Inputs of the inference tests: a few LFW photos of two people (in identity folders, as the crop
stage reads them) and small randomly initialised checkpoints in the project's and the seed's formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from facenet_core.config.schema import Config, EvalSet
from facenet_core.detect.options import CropOptions
from facenet_core.detect.parallel import crop_tree
from facenet_core.models import create_model
from facenet_core.train.checkpoints import save_checkpoint

PHOTOS = {"Aaron_Peirsol": ("0001", "0002"), "Abdullah_Gul": ("0001", "0002")}
PROJECT_MEAN = [0.5, 0.45, 0.4]
PROJECT_STD = [0.25, 0.22, 0.21]
PROJECT_INPUT_SIZE = 64
OPTIONS = CropOptions(workers=1, batch_size=3)  # the default crops, a batch split across the photos
ALIGNED_OPTIONS = CropOptions(workers=1, batch_size=3, method="aligned")


@pytest.fixture(scope="session")
def photo_tree(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """input/<person>/<person>_<n>.jpg: copies of four LFW photos, two people."""
    root = tmp_path_factory.mktemp("photos") / "input"
    for person, numbers in PHOTOS.items():
        (root / person).mkdir(parents=True)
        for number in numbers:
            name = f"{person}_{number}.jpg"
            shutil.copyfile(lfw_dir / "lfw-deepfunneled" / person / name, root / person / name)
    return root


@pytest.fixture(scope="session")
def photo_paths(photo_tree: Path) -> list[Path]:
    return sorted(photo_tree.glob("*/*.jpg"))


@pytest.fixture(scope="session")
def crop_stage(photo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict], Path]:
    """The crop stage's rows (by source) and output folder for the photos (detected in one batch)."""
    output = tmp_path_factory.mktemp("crops") / "lfw"
    crop_tree(photo_tree, output, CropOptions(workers=1))
    rows = pq.read_table(output / "detections.parquet").to_pylist()
    return {row["source"]: row for row in rows}, output


@pytest.fixture(scope="session")
def aligned_crop_stage(photo_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict], Path]:
    """The crop stage's rows (by source) and output folder for the photos aligned (crop method aligned)."""
    output = tmp_path_factory.mktemp("crops") / "lfw-aligned"
    crop_tree(photo_tree, output, ALIGNED_OPTIONS)
    rows = pq.read_table(output / "detections.parquet").to_pylist()
    return {row["source"]: row for row in rows}, output


def project_checkpoint_state(model: torch.nn.Module, **extra) -> dict:
    """A checkpoint as training writes it (the keys `load_model` reads), for a 16-d resnet18."""
    return {
        "epoch": 3,
        "embedding_dimension": 16,
        "batch_size_training": 12,
        "model_state_dict": model.state_dict(),
        "model_architecture": "resnet18",
        "optimizer_model_state_dict": None,
        "best_distance_threshold": 1.05,
        "image_size": PROJECT_INPUT_SIZE,
        "normalize_mean": PROJECT_MEAN,
        "normalize_std": PROJECT_STD,
        "config": {"crop": "mtcnn", "crop_image_size": 224, "crop_margin": 0, "distance_metric": "euclidean"},
        **extra,
    }


@pytest.fixture(scope="session")
def project_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a randomly initialised (seeded) resnet18 trained at 64 px on the default crops."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "best.pt"
    return save_checkpoint(path, project_checkpoint_state(create_model("resnet18", 16)))


# What a registered test model's evaluation reports: its thresholds are the ones the contract carries.
REGISTERED_METRICS = {"accuracy": 0.9, "roc_auc": 0.9, "best_distance_threshold": 1.05, "threshold_at_far": 0.7}


def registry_config(tmp_path: Path) -> Config:
    """The config a project checkpoint of these tests is registered under (workspace in `tmp_path`)."""
    return Config(
        workspace=str(tmp_path / "workspace"),
        model_architecture="resnet18",
        embedding_dimension=16,
        image_size=PROJECT_INPUT_SIZE,
        normalize_mean=PROJECT_MEAN,
        normalize_std=PROJECT_STD,
        eval_sets=[EvalSet(name="lfw", root=str(tmp_path / "lfw"), pairs=str(tmp_path / "pairs.txt"))],
    )
