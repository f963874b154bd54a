"""The crop choice: an unknown `crop` value, and a pre-aligned RecordIO pack in which MTCNN finds no
face. Each ends as one line with exit code 2 and leaves the pack and a sibling folder as they were."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from support.tiny import TINY
from support.tree_state import tree_state

from facenet_core.ingest.insightface_pack import write_recordio_pack
from flows.cli import main

REPO = Path(__file__).resolve().parents[2]


def blank_face(value: int) -> bytes:
    """A 112x112 JPEG of one flat colour: an 'aligned face' no detector can find a face in."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((112, 112, 3), value, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    return {"workspace": tmp_path / "ws", "sibling": sibling}


@pytest.mark.parametrize("value", ["banana", "MTCNN", "sandberg"])
def test_unknown_crop_value_refused_before_any_work(value, area, capsys):
    before = tree_state(area["sibling"])
    preset = str(REPO / "deployments" / "demo.yaml")
    code = main(["run", "--preset", preset, "--workspace", str(area["workspace"]), "--crop", value])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert (
        err.startswith("facenet run: error: invalid configuration")
        and "crop: Input should be 'mtcnn', 'aligned' or 'none'" in err
    )
    assert not area["workspace"].exists() and tree_state(area["sibling"]) == before


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_pre_aligned_pack_without_a_findable_face_names_the_table_and_crop_none(tmp_path, area, capsys):
    pack = area["sibling"] / "glint"
    pack.mkdir()
    write_recordio_pack(pack / "train.rec", [[blank_face(40 * i + k) for k in range(3)] for i in range(3)])
    preset = tmp_path / "blank.yaml"
    dataset = {"name": "glint360k", "catalogue": "glint360k", "path": str(pack)}
    preset.write_text(yaml.safe_dump({**TINY, "workspace": str(area["workspace"]), "dataset": dataset}))
    before = tree_state(area["sibling"])

    code = main(["run", "--preset", str(preset)])
    err = capsys.readouterr().err.strip().splitlines()
    detections = area["workspace"] / "cropped" / "glint360k" / "detections.parquet"
    assert code == 2 and err[-1] == (
        "facenet run: error: MTCNN found no face in the 9 pre-aligned images of dataset 'glint360k' "
        f"(statuses in {detections}); check the images, or set crop: none to train on them as they are"
    )
    assert set(pd.read_parquet(detections)["status"]) == {"no_face"}
    assert tree_state(area["sibling"]) == before
    assert not (area["workspace"] / "manifests" / "glint360k.parquet").exists()
