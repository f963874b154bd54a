"""A glint360k-style RecordIO pack through facenet-train: unpack, MTCNN crop (224, margin 0),
manifest, training, evaluation, registration, as the seed did; then the same pack with `crop: none`.

The pack holds 112x112 faces like insightface's: real LFW pictures (their central face region)
when ../shared/data/lfw is present, generated faces otherwise, written with the project's writer.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image
from support.tiny import TINY

from facenet_core.config import load_config
from facenet_core.ingest.catalogue import lookup
from facenet_core.ingest.insightface_pack import write_recordio_pack, write_verification_bin
from facenet_core.synthetic.render import render_image
from facenet_core.tracking.pyfunc import read_contract
from flows.train import run_in_process

REPO = Path(__file__).resolve().parents[2]
LFW_DIR = Path(os.environ.get("FACENET_LFW_DIR", REPO.parent / "shared" / "data" / "lfw"))
TRAIN_IDENTITIES, IMAGES_PER_IDENTITY, EVAL_PAIRS = 6, 4, 20
FACE = 112  # insightface's aligned size


def _face(picture: Image.Image) -> bytes:
    """The central face region of a 250x250 portrait as a 112x112 JPEG, close to insightface's framing."""
    side = picture.width
    box = (round(side * 0.24), round(side * 0.26), round(side * 0.76), round(side * 0.78))
    buffer = io.BytesIO()
    picture.convert("RGB").crop(box).resize((FACE, FACE), Image.BICUBIC).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _people(count: int, images: int) -> list[list[bytes]]:
    """`count` people with `images` 112x112 faces each: LFW's when present, generated otherwise."""
    root = LFW_DIR / "lfw-deepfunneled"
    if root.is_dir():
        folders = [f for f in sorted(root.iterdir()) if f.is_dir() and len(list(f.glob("*.jpg"))) >= images]
        return [[_face(Image.open(p)) for p in sorted(f.glob("*.jpg"))[:images]] for f in folders[:count]]
    return [[_face(Image.open(io.BytesIO(render_image(7, i, n)))) for n in range(1, images + 1)] for i in range(count)]


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """glint/train.rec + train.idx (6 people x 4 faces) and lfw.bin (20 pairs of 10 other people)."""
    folder = tmp_path_factory.mktemp("pack") / "glint"
    folder.mkdir()
    people = _people(TRAIN_IDENTITIES + EVAL_PAIRS // 2, IMAGES_PER_IDENTITY)
    assert write_recordio_pack(folder / "train.rec", people[:TRAIN_IDENTITIES]) == {
        "images": TRAIN_IDENTITIES * IMAGES_PER_IDENTITY,
        "identities": TRAIN_IDENTITIES,
    }
    held_out = people[TRAIN_IDENTITIES:]
    pairs = []
    for fold in range(10):  # each fold: one same pair, one different pair
        person, other = held_out[fold], held_out[(fold + 1) % len(held_out)]
        pairs += [(person[0], person[1], True), (person[2], other[3], False)]
    write_verification_bin(folder / "lfw.bin", pairs)
    return folder


def preset(tmp_path: Path, pack: Path, **fields) -> Path:
    """The tiny recipe on the pack, read through the glint360k catalogue entry like the seed's preset."""
    values = {
        **TINY,
        "workspace": str(tmp_path / "workspace"),
        "dataset": {"name": "glint360k", "catalogue": "glint360k", "path": str(pack)},
        "eval_sets": [
            {
                "name": "pack-lfw",
                "dataset": "glint360k",
                "root": "verification/lfw",
                "pairs": "verification/lfw/pairs.txt",
            }
        ],
        "epochs": 1,
        "crop_shard_size": 64,  # one shard per tree: cropped in its task's thread, no worker process to start
        **fields,
    }
    path = tmp_path / "recordio.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_seed_preset_crops_glint360k_as_the_seed():
    config = load_config(REPO / "deployments" / "glint360k_resnet34.yaml")
    entry = lookup("glint360k")
    assert config.crop == "mtcnn" and (config.crop_image_size, config.crop_margin, config.image_size) == (224, 0, 140)
    assert entry.format == "recordio" and entry.aligned  # the source is pre-aligned; it is cropped all the same


def _preprocessing_tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    tags = client.get_run(run_id).data.tags
    prefix = "facenet.preprocessing."
    return {key[len(prefix) :]: value for key, value in tags.items() if key.startswith(prefix)}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_recordio_pack_unpacked_cropped_trained_evaluated_registered(tmp_path, pack):
    workspace = tmp_path / "workspace"
    result = run_in_process(preset(tmp_path, pack))

    raw = workspace / "raw" / "glint360k" / "images"
    unpacked = sorted(raw.rglob("*.jpg"))
    assert len(unpacked) == TRAIN_IDENTITIES * IMAGES_PER_IDENTITY
    assert {p.parent.name for p in unpacked} == {f"id_{label}" for label in range(TRAIN_IDENTITIES)}
    assert Image.open(unpacked[0]).size == (FACE, FACE)

    detections = pd.read_parquet(workspace / "cropped" / "glint360k" / "detections.parquet")
    assert len(detections) == len(unpacked)
    found = detections[detections["status"] == "ok"]
    assert len(found) >= len(unpacked) // 2, detections["status"].value_counts().to_dict()
    crops = sorted((workspace / "cropped" / "glint360k").rglob("*.png"))
    assert len(crops) == len(found) and {Image.open(p).size for p in crops} == {(224, 224)}
    manifest = pd.read_parquet(workspace / "manifests" / "glint360k.parquet")
    assert len(manifest) == len(found) and set(manifest["width"]) == {224}
    assert (workspace / "cropped" / "eval-pack-lfw" / "detections.parquet").is_file()  # the eval pairs cropped too

    [evaluation] = result["evaluations"]
    assert evaluation["epoch"] == 0 and evaluation["eval_set"] == "pack-lfw"
    assert 0 < evaluation["metrics"]["num_pairs"] <= EVAL_PAIRS and 0.0 <= evaluation["metrics"]["accuracy"] <= 1.0
    registered = result["registered"]
    assert registered["alias"] == "champion"

    client = MlflowClient(result["tracking_uri"])
    cropped = {
        "crop_method": "mtcnn-sandberg",
        "crop_image_size": "224",
        "crop_margin": "0",
        "source_alignment": "pre-aligned",
        "crop_done_by": "pipeline",
    }
    assert _preprocessing_tags(client, result["tracking_run_id"]) == cropped
    version = client.get_model_version("facenet", registered["version"])
    assert version.tags["crop_method"] == "mtcnn-sandberg"
    mlflow.set_tracking_uri(result["tracking_uri"])
    contract = read_contract(mlflow.artifacts.download_artifacts(registered["model_uri"]))
    assert {key: str(contract[key]) for key in cropped} == cropped
    card = Path(mlflow.artifacts.download_artifacts(f"{registered['model_uri']}/MODEL_CARD.md")).read_text()
    assert "mtcnn-sandberg crop at 224 px, margin 0 (done by the pipeline) of pre-aligned source images" in card

    # The explicit choice: train on the unpacked 112x112 faces as they are, recorded as such.
    plain = run_in_process(preset(tmp_path, pack, crop="none"))
    assert plain["run_key"] != result["run_key"]
    manifest = pd.read_parquet(workspace / "manifests" / "glint360k-uncropped.parquet")
    assert len(manifest) == len(unpacked) and set(manifest["width"]) == {FACE}
    assert _preprocessing_tags(client, plain["tracking_run_id"]) == {
        "crop_method": "none",
        "crop_image_size": "none",
        "crop_margin": "none",
        "source_alignment": "pre-aligned",
        "crop_done_by": "none",
    }
    version = client.get_model_version("facenet", plain["registered"]["version"])
    assert version.tags["crop_method"] == "none"
    contract = read_contract(mlflow.artifacts.download_artifacts(plain["registered"]["model_uri"]))
    assert (contract["crop_method"], contract["source_alignment"]) == ("none", "pre-aligned")
    card = Path(mlflow.artifacts.download_artifacts(f"{plain['registered']['model_uri']}/MODEL_CARD.md")).read_text()
    assert "no crop (pre-aligned source images used as distributed)" in card
