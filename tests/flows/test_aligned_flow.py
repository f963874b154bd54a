"""`crop: aligned` through facenet-train: training and evaluation images aligned on MTCNN's landmarks
into their own crop folders, the run, the contract, the version tags and the model card saying so,
and the registered model (served pyfunc, verify, the checkpoint) aligning photos the same way."""

from __future__ import annotations

import base64
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image
from support.tiny import TINY

from facenet_core.detect.align import aligned_face, landmark_points
from facenet_core.images import load_rgb
from facenet_core.inference.embedder import TorchEmbedder
from facenet_core.inference.faces import detect_faces
from facenet_core.inference.model import load_model
from facenet_core.inference.verify import verify_photos
from facenet_core.tracking.pyfunc import read_contract
from flows.train import run_in_process

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

ALIGNED = "mtcnn-aligned-arcface"


def _ok_rows(crops: Path) -> list[dict]:
    rows = pd.read_parquet(crops / "detections.parquet")
    return rows[rows["status"] == "ok"].to_dict("records")


def _landmarks(row: dict) -> np.ndarray:
    return landmark_points(np.array([row[f"lm_x{k}"] for k in range(1, 6)] + [row[f"lm_y{k}"] for k in range(1, 6)]))


def test_crop_aligned_trains_evaluates_and_registers_a_model_that_aligns_photos(tmp_path):
    preset = tmp_path / "aligned.yaml"
    values = {**TINY, "workspace": str(tmp_path / "workspace"), "crop": "aligned", "epochs": 1, "crop_shard_size": 64}
    preset.write_text(yaml.safe_dump(values))
    result = run_in_process(preset)
    workspace = tmp_path / "workspace"

    # Training and evaluation images aligned, each in its own -aligned folder, no box crops made.
    train_crops, eval_crops = workspace / "cropped" / "tiny-aligned", workspace / "cropped" / "eval-tiny-eval-aligned"
    assert sorted(p.name for p in (workspace / "cropped").iterdir()) == [eval_crops.name, train_crops.name]
    raw = workspace / "raw" / "tiny"
    for crops, folder in ((train_crops, raw / "train"), (eval_crops, raw / "eval")):
        rows = _ok_rows(crops)
        assert rows
        first = rows[0]
        saved = np.asarray(Image.open(crops / first["output"]))
        np.testing.assert_array_equal(
            saved, aligned_face(load_rgb(folder / first["source"], False), _landmarks(first), 224)
        )
    manifest = pd.read_parquet(workspace / "manifests" / "tiny-aligned.parquet")
    assert len(manifest) == len(_ok_rows(train_crops)) and set(manifest["width"]) == {224}
    assert result["evaluations"][0]["metrics"]["num_pairs"] > 0

    # What the run, the version, the contract and the card record.
    client = MlflowClient(result["tracking_uri"])
    tags = client.get_run(result["tracking_run_id"]).data.tags
    prefix = "facenet.preprocessing."
    assert {key[len(prefix) :]: value for key, value in tags.items() if key.startswith(prefix)} == {
        "crop_method": ALIGNED,
        "crop_image_size": "224",
        "crop_margin": "none",
        "source_alignment": "unaligned",
        "crop_done_by": "pipeline",
    }
    registered = result["registered"]
    assert client.get_model_version("facenet", registered["version"]).tags["crop_method"] == ALIGNED
    mlflow.set_tracking_uri(result["tracking_uri"])
    contract = read_contract(mlflow.artifacts.download_artifacts(registered["model_uri"]))
    assert (contract["crop_method"], contract["crop_image_size"], contract["crop_margin"]) == (ALIGNED, 224, None)
    card = Path(mlflow.artifacts.download_artifacts(f"{registered['model_uri']}/MODEL_CARD.md")).read_text()
    assert f"{ALIGNED} crop (5 landmarks onto the ArcFace template) at 224 px (done by the pipeline)" in card
    assert "aligned as the training crops" in card

    # The registered model aligns photos as the crop stage did: the crop, the served embedding, verify.
    loaded = load_model(registered["model_uri"], tracking_uri=result["tracking_uri"])
    options = loaded.contract.crop_options(workers=1)
    assert (options.method, options.image_size, options.margin) == ("aligned", 224, 0)
    rows = _ok_rows(eval_crops)[:2]
    photos = [raw / "eval" / row["source"] for row in rows]
    pngs = np.stack([np.asarray(Image.open(eval_crops / row["output"])) for row in rows])
    found = detect_faces(photos, options)
    np.testing.assert_array_equal(np.stack([photo.faces[0].crop for photo in found]), pngs)
    expected = TorchEmbedder(loaded.model, loaded.contract).embed(pngs)
    served = mlflow.pyfunc.load_model(registered["model_uri"])
    frame = pd.DataFrame({"image": [base64.b64encode(p.read_bytes()).decode("ascii") for p in photos]})
    embeddings = np.array(served.predict(frame).embedding.tolist())
    assert np.abs(embeddings - expected).max() < 1e-5
    verification = verify_photos(TorchEmbedder(loaded.model, loaded.contract), photos[0], photos[1], options, "1.0")
    assert verification.distance == pytest.approx(float(np.linalg.norm(expected[0] - expected[1])), abs=1e-5)

    # A checkpoint of the run gives the same contract.
    checkpoint = load_model(Path(result["run_dir"]) / "checkpoints" / "best.pt").contract
    assert (checkpoint.crop_method, checkpoint.crop_image_size, checkpoint.crop_margin) == (ALIGNED, 224, None)
    assert checkpoint.crop_options() == options.__class__(method="aligned")
