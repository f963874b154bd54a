"""The PyTorch detector against Sandberg's TensorFlow detect_face.py on real LFW pictures.

Reference numbers come from benchmarks/reference/mtcnn_reference.py (see its docstring for the
command); each image is rebuilt here from the LFW files its name gives and checked pixel by pixel,
so the full copy or just those files (FACENET_LFW_DIR, e.g. on a GPU machine) will do.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facenet_core.detect.detector import MTCNN
from facenet_core.detect.select import choose_face, crop_box

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "reference_lfw.json"
sys.path.insert(0, str(REPO / "benchmarks" / "reference"))
from reference_images import image_sha256, named_image, reference_images  # noqa: E402


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def compared(request, lfw_dir):
    """(reference row, image, our faces) per reference image, detected on CPU and, where there is one, a GPU."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the GPU detector is compared on a GPU machine")
    torch.set_num_threads(1)
    reference = {row["name"]: row for row in json.loads(FIXTURE.read_text())["images"]}
    named = [(name, named_image(lfw_dir / "lfw-deepfunneled", name)) for name in reference]
    for name, img in named:
        if reference[name]["sha256"] != image_sha256(img):
            pytest.skip(f"{name} decodes differently here than in the reference run")
    detector = MTCNN(request.param)
    faces = []
    for start in range(0, len(named), 16):
        faces += detector.detect([img for _, img in named[start : start + 16]])
    return [(reference[name], img, found) for (name, img), found in zip(named, faces, strict=True)]


@pytest.mark.lfw
@pytest.mark.slow
def test_same_faces_and_identical_crop_boxes(compared):
    same_count = same_crop = 0
    for ref, img, found in compared:
        same_count += found.boxes.shape[0] == ref["n_faces"]
        if ref["n_faces"] == 0 or found.boxes.shape[0] == 0:
            same_crop += ref["n_faces"] == found.boxes.shape[0]
            continue
        height, width = img.shape[:2]
        box = found.boxes[choose_face(found.boxes, height, width)]
        same_crop += list(crop_box(box, 0, height, width)) == ref["crop"]
    assert len(compared) == 233
    assert same_count / len(compared) >= 0.99
    assert same_crop / len(compared) >= 0.99


@pytest.mark.lfw
@pytest.mark.slow
def test_scores_boxes_and_landmarks_match(compared):
    checked = 0
    for ref, img, found in compared:
        if ref["n_faces"] == 0 or found.boxes.shape[0] != ref["n_faces"]:
            continue
        i = choose_face(found.boxes, *img.shape[:2])
        assert found.boxes[i, 4] == pytest.approx(ref["score"], abs=1e-5)
        np.testing.assert_allclose(found.boxes[i, :4], ref["box"], atol=1e-3)
        np.testing.assert_allclose(found.points[i], ref["landmarks"], atol=1e-3)
        np.testing.assert_allclose(found.boxes, ref["all_boxes"], atol=1e-3)
        checked += 1
    assert checked >= 0.99 * len(compared)


@pytest.mark.lfw
def test_fixture_names_rebuild_the_reference_set(lfw_dir):
    root = lfw_dir / "lfw-deepfunneled"
    names = [row["name"] for row in json.loads(FIXTURE.read_text())["images"]]
    generated = list(reference_images(root))
    assert [name for name, _ in generated] == names
    for name, img in generated:
        if name.startswith("large/"):
            np.testing.assert_array_equal(named_image(root, name), img)
