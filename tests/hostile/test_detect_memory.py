"""`facenet crop` against huge photos: a photo larger than the detector's pixel budget is cropped as
it would be without one, and a budget outside its range is refused before anything is written.

Each case is built at test time and asserts the message or the result, the exit code and that the
input and a sibling folder are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from facenet_core.detect.detector import MTCNN, Chunking
from facenet_core.detect.select import choose_face, crop_box
from flows.cli import main
from tests.support.tree_state import tree_state

pytestmark = pytest.mark.timeout(300)
FIXTURES = Path(__file__).resolve().parents[1] / "detect" / "fixtures"
FAST = ["--device", "cpu", "--workers", "1", "--image_size", "32"]


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    """raw/person/ with a 1.9 MP photo (a face filling most of it) and a 96-px face; a sibling folder."""
    face = np.asarray(Image.open(FIXTURES / "face_0.png").convert("RGB"))
    photo = np.full((1200, 1600, 3), 150, np.uint8)
    photo[150:1050, 350:1250] = cv2.resize(face, (900, 900), interpolation=cv2.INTER_CUBIC)
    raw = tmp_path / "area" / "raw"
    (raw / "person").mkdir(parents=True)
    Image.fromarray(photo).save(raw / "person" / "huge.png")
    Image.fromarray(np.asarray(Image.open(FIXTURES / "face_1.png").convert("RGB"))).save(raw / "person" / "small.png")
    return {"raw": raw, "sibling": sibling, "out": tmp_path / "area" / "out", "photo": photo}


@pytest.mark.parametrize("value", ["0.5", "1001", "nan"])
def test_a_budget_outside_its_range_is_refused_before_any_work(area, value, capsys):
    before = [tree_state(area["raw"]), tree_state(area["sibling"])]
    code = main(["crop", str(area["raw"]), str(area["out"]), *FAST, "--crop_batch_megapixels", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        f"facenet crop: error: crop option batch_megapixels must be in 1..1000 (megapixels detected together), "
        f"got {float(value)}"
    )
    assert not area["out"].exists()
    assert [tree_state(area["raw"]), tree_state(area["sibling"])] == before


def test_a_photo_over_the_budget_is_cropped_as_without_one(area, capsys):
    before = [tree_state(area["raw"]), tree_state(area["sibling"])]
    code = main(["crop", str(area["raw"]), str(area["out"]), *FAST, "--crop_batch_megapixels", "1"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["ok"] == 2
    rows = {row["source"]: row for row in pq.read_table(area["out"] / "detections.parquet").to_pylist()}
    unbounded = MTCNN(max_pixels=10**9)
    unbounded.chunking = Chunking(pnet_pixels=10**12, rnet_crops=256, onet_crops=32)
    faces = unbounded.detect([area["photo"]])[0]
    expected = crop_box(faces.boxes[choose_face(faces.boxes, 1200, 1600)], 0, 1200, 1600)
    row = rows["person/huge.png"]
    assert (row["crop_x1"], row["crop_y1"], row["crop_x2"], row["crop_y2"]) == expected
    assert (row["width"], row["height"]) == (1600, 1200)
    assert Image.open(area["out"] / "person" / "huge.png").size == (32, 32)
    assert [tree_state(area["raw"]), tree_state(area["sibling"])] == before
