"""A tiny on-disk dataset (manifest + per-epoch triplets) and a matching small training config."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facenet_core.config import Config
from facenet_core.data.manifest import build_manifest, read_manifest
from facenet_core.data.triplets import generate_triplets, save_triplets

IDENTITIES, IMAGES_PER_IDENTITY, SIDE = 4, 3, 36


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine run fastest single-threaded (no OpenMP spinning)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    """4 identities x 3 noise images; manifest and triplets of epochs 0-2 (2 steps of 4 triplets)."""
    base = tmp_path_factory.mktemp("tiny_dataset")
    rng = np.random.default_rng(0)
    for identity in range(IDENTITIES):
        folder = base / "images" / f"person_{identity}"
        folder.mkdir(parents=True)
        tint = rng.integers(0, 255, size=3)
        for index in range(IMAGES_PER_IDENTITY):
            pixels = (tint + rng.integers(0, 60, size=(SIDE, SIDE, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{index}.png")
    manifest_path = base / "manifest.parquet"
    build_manifest(base / "images", manifest_path, workers=1, progress=False)
    manifest = read_manifest(manifest_path)
    triplets = {}
    for epoch in range(3):
        rows = generate_triplets(
            manifest.labels, seed=0, epoch=epoch, iterations_per_epoch=2, batch_size=4, num_human_identities_per_batch=3
        )
        meta = {"manifest_fingerprint": manifest.fingerprint, "seed": 0, "epoch": epoch}
        triplets[epoch] = save_triplets(base / "triplets" / f"epoch_{epoch}.npy", rows, meta)
    return {"manifest": manifest_path, "triplets": triplets}


@pytest.fixture
def tiny_config(tiny_dataset, tmp_path) -> Config:
    return Config(
        manifest_path=str(tiny_dataset["manifest"]),
        workspace=str(tmp_path / "workspace"),
        model_architecture="resnet18",
        embedding_dimension=8,
        image_size=32,
        batch_size=4,
        iterations_per_epoch=2,
        num_human_identities_per_batch=3,
        num_workers=0,
        epochs=3,
        log_every_n_steps=1,
        margin=0.5,
    )


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"
