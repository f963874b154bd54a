"""`facenet verify` and `verify_photos`: two LFW photos of one person and one of another, a seeded
random project checkpoint (threshold 1.05 recorded); the first output line, the decision against a
threshold, the default threshold, and one-line errors for photos that are missing, not images or faceless."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from support.cli import assert_one_line_error, invoke

from facenet_core.errors import UserError
from facenet_core.evaluate.embed import pair_distances
from facenet_core.inference.faces import detect_faces
from facenet_core.inference.runtime import open_model
from facenet_core.inference.verify import verify_photos

pytestmark = pytest.mark.lfw


@pytest.fixture(scope="module")
def opened(project_checkpoint):
    return open_model(project_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def options(opened):
    return opened.embedder.contract.crop_options(device="cpu")


@pytest.fixture(scope="module")
def photos(photo_tree):
    same = sorted((photo_tree / "Aaron_Peirsol").glob("*.jpg"))
    other = sorted((photo_tree / "Abdullah_Gul").glob("*.jpg"))[0]
    return same[0], same[1], other


def test_distance_is_the_euclidean_distance_of_the_kept_faces_embeddings(opened, options, photos):
    first, second, _ = photos
    result = verify_photos(opened.embedder, first, second, options, threshold="best")
    faces = [photo.faces[0] for photo in detect_faces([first, second], options)]
    vectors = opened.embedder.embed(np.stack([face.crop for face in faces]))
    expected = pair_distances(vectors, np.array([0]), np.array([1]), "euclidean")[0]
    assert result.distance == pytest.approx(expected, abs=1e-6)
    assert [face.box for face in result.faces] == [face.box for face in faces]
    assert (result.threshold, result.metric) == (1.05, "euclidean")
    assert result.same is (result.distance < 1.05)


def test_the_decision_follows_the_threshold_given(opened, options, photos):
    first, _, other = photos
    distance = verify_photos(opened.embedder, first, other, options, threshold="0").distance
    above = verify_photos(opened.embedder, first, other, options, threshold=str(distance + 1e-3))
    below = verify_photos(opened.embedder, first, other, options, threshold=str(distance - 1e-3))
    assert (above.same, below.same) == (True, False)
    assert above.threshold_source == "given"


def test_a_photo_without_a_face_is_an_error_naming_it(opened, options, photos, tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("RGB", (160, 160), (128, 128, 128)).save(grey)
    with pytest.raises(UserError, match=re.escape(f"photo {grey}: no face found")):
        verify_photos(opened.embedder, photos[0], grey, options)


def test_command_prints_distance_first_then_threshold_decision_and_boxes(project_checkpoint, photos, capsys):
    first, second, _ = photos
    argv = ["verify", str(first), str(second), "--checkpoint", str(project_checkpoint), "--device", "cpu"]
    code, out, _ = invoke([*argv, "--threshold", "2.5"], capsys)
    lines = out.splitlines()
    assert code == 0
    assert re.fullmatch(r"distance \d+\.\d{6}", lines[0])
    assert lines[1] == "threshold 2.500000 (euclidean; given)"
    assert lines[2] == "decision same"  # unit vectors are at most 2 apart
    assert re.fullmatch(rf"face A {re.escape(str(first))} box \d+,\d+,\d+,\d+ score [01]\.\d{{4}}", lines[3])
    assert lines[4].startswith(f"face B {second} box ")
    code, out, _ = invoke(argv, capsys)
    assert out.splitlines()[1] == "threshold 1.050000 (euclidean; best-accuracy threshold of the model's evaluation)"


def test_bad_photos_get_one_line_each(project_checkpoint, photos, tmp_path, capsys):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a photo")
    model = ["--checkpoint", str(project_checkpoint), "--device", "cpu"]
    cases = {
        str(tmp_path / "missing.jpg"): "does not exist",
        str(not_image): "cannot be read",
    }
    for path, message in cases.items():
        code, _, err = invoke(["verify", str(photos[0]), path, *model], capsys)
        line = assert_one_line_error(err)
        assert code == 2 and line.startswith("facenet verify: error: photo ") and path in line and message in line
    code, _, err = invoke(["verify", str(photos[0]), str(photos[1]), *model, "--threshold", "far0.1"], capsys)
    assert code == 2 and "far0.1" in assert_one_line_error(err)


def test_a_registry_uri_without_a_store_is_refused_and_no_store_is_created(photos, tmp_path, capsys):
    workspace = tmp_path / "workspace"
    argv = ["verify", str(photos[0]), str(photos[1]), "--model", "models:/facenet@champion"]
    code, _, err = invoke([*argv, "--workspace", str(workspace)], capsys)
    line = assert_one_line_error(err)
    assert code == 2 and f"no MLflow store at {workspace / 'mlflow.db'}" in line and "--tracking_uri" in line
    assert not workspace.exists()
