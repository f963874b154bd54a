"""The detector's pixel budget: batches and P-Net tiles stay within it, and budgeting changes no box."""

import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facenet_core.config import Config
from facenet_core.detect import crop as crop_module
from facenet_core.detect import detector as detector_module
from facenet_core.detect.crop import CropOptions, crop_shard
from facenet_core.detect.detector import (
    CPU_CHUNKING,
    MTCNN,
    Chunking,
    _pnet_out_size,
    fits_batch,
    plan_batches,
    pnet_tiles,
)
from facenet_core.detect.resize import level_size, pyramid_scales
from facenet_core.detect.select import choose_face, crop_box
from facenet_core.errors import UserError

UNBOUNDED = Chunking(pnet_pixels=10**12, rnet_crops=256, onet_crops=32)


@pytest.fixture(scope="module")
def large(faces):
    """A 1400 x 1200 photo: a synthetic face enlarged onto a textured background, offset from the centre."""
    rng = np.random.default_rng(7)
    photo = cv2.resize(rng.integers(60, 200, (140, 120, 3), dtype=np.uint8), (1200, 1400), interpolation=cv2.INTER_AREA)
    photo[300:1000, 250:950] = cv2.resize(faces[0], (700, 700), interpolation=cv2.INTER_CUBIC)
    return photo


@pytest.mark.parametrize("seed", range(20))
def test_planned_batches_never_exceed_the_budget(seed):
    rng = np.random.default_rng(seed)
    pixels = rng.choice([62_500, 921_600, 12_000_000, 48_000_000], size=int(rng.integers(0, 60))).tolist()
    max_images, max_pixels = int(rng.integers(1, 20)), int(rng.choice([1_000_000, 8_000_000, 32_000_000]))
    batches = plan_batches(pixels, max_images, max_pixels)
    assert [i for batch in batches for i in batch] == list(range(len(pixels)))
    for k, batch in enumerate(batches):
        total = sum(pixels[i] for i in batch)
        assert len(batch) <= max_images
        assert total <= max_pixels or len(batch) == 1  # only a photo over the budget goes over it, alone
        if k + 1 < len(batches):  # greedy: the next image did not fit
            assert not fits_batch(len(batch), total, pixels[batches[k + 1][0]], max_images, max_pixels)


def test_a_photo_over_the_budget_is_detected_alone():
    assert [list(b) for b in plan_batches([500_000, 48_000_000, 500_000, 500_000], 16, 1_000_000)] == [[0], [1], [2, 3]]
    assert [list(b) for b in plan_batches([62_500] * 5, 2, 32_000_000)] == [[0, 1], [2, 3], [4]]


SHAPES = [(12, 30_000), (30_000, 13), (700, 610), (4800, 3600), (3600, 4800), (517, 9001), (123, 2_000_001 // 123)]


@pytest.mark.parametrize("budget", [250_000, 1_000_000, 8_000_000])
@pytest.mark.parametrize("shape", SHAPES)
def test_pnet_tiles_cover_each_cell_once_within_the_budget(shape, budget):
    height, width = shape
    out_h, out_w = _pnet_out_size(height), _pnet_out_size(width)
    covered = np.zeros((out_h, out_w), np.int32)
    tiles = pnet_tiles(height, width, budget)
    for r0, r1, c0, c1 in tiles:
        covered[r0:r1, c0:c1] += 1
        read = (min(2 * r1 + 10, height) - 2 * r0) * (min(2 * c1 + 10, width) - 2 * c0)
        assert read <= max(budget, height * width if len(tiles) == 1 else 0)
        # Large enough that every convolution takes the code PyTorch takes for the whole level.
        assert len(tiles) == 1 or (r1 - r0) * (c1 - c0) >= 2048
    assert covered.min() == covered.max() == 1
    assert (len(tiles) == 1) == (height * width <= budget)
    assert len(tiles) <= 2 * math.ceil(height * width / budget) + 2


def test_tiled_levels_give_exactly_the_whole_levels_proposals_and_faces(large):
    whole, tiled = MTCNN(), MTCNN()
    whole.chunking = UNBOUNDED
    scales = pyramid_scales(*large.shape[:2], 20, 0.709)
    assert max(math.prod(level_size(*large.shape[:2], s)) for s in scales) > CPU_CHUNKING.pnet_pixels
    with torch.inference_mode():
        proposals_whole, proposals_tiled = whole._stage_one([large]), tiled._stage_one([large])
    assert proposals_whole[0].shape[0] > 10
    np.testing.assert_array_equal(proposals_tiled[0], proposals_whole[0])
    a, b = whole.detect([large])[0], tiled.detect([large])[0]
    assert a.boxes.shape[0] >= 1
    np.testing.assert_array_equal(b.boxes, a.boxes)
    np.testing.assert_array_equal(b.points, a.points)


def test_a_batch_mixing_a_large_and_small_images_finds_what_each_finds_alone(large, faces):
    detector = MTCNN(max_pixels=1_000_000)  # the large photo (1.7 MP) goes alone, the small ones together
    pictures = [faces[1], large, faces[0], faces[2][:90], faces[3]]
    alone = [detector.detect([p])[0] for p in pictures]
    together = detector.detect(pictures)
    assert [f.boxes.shape[0] for f in together] == [f.boxes.shape[0] for f in alone]
    assert alone[1].boxes.shape[0] >= 1
    for i, (a, b) in enumerate(zip(alone, together, strict=True)):
        if i <= 1:  # alone in their detection batch either way: bit for bit the same
            np.testing.assert_array_equal(b.boxes, a.boxes)
            np.testing.assert_array_equal(b.points, a.points)
        else:  # one P-Net call for the three (zero-padded): the same faces, float noise below 1e-4
            np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-4)
            np.testing.assert_allclose(b.points, a.points, atol=1e-4)
        h, w = pictures[i].shape[:2]
        if a.boxes.shape[0]:
            assert crop_box(b.boxes[choose_face(b.boxes, h, w)], 0, h, w) == crop_box(
                a.boxes[choose_face(a.boxes, h, w)], 0, h, w
            )


def test_candidate_crops_are_cut_one_network_call_at_a_time(large, monkeypatch):
    made, cut = [], detector_module._crop_chunks

    def recording(images, candidates, size, chunk):
        made.append((size, sum(c.shape[0] for c in candidates), []))
        for crops in cut(images, candidates, size, chunk):
            made[-1][2].append(crops.shape[0])
            yield crops

    monkeypatch.setattr(detector_module, "_crop_chunks", recording)
    MTCNN().detect([large])
    (rnet_size, candidates, chunks), *_ = made
    assert rnet_size == 24 and candidates > CPU_CHUNKING.rnet_crops  # more than one call takes
    assert max(chunks) == CPU_CHUNKING.rnet_crops and sum(chunks) == candidates
    assert all(max(sizes) <= CPU_CHUNKING.onet_crops for size, _, sizes in made if size == 48)


@pytest.mark.parametrize("value", [0.5, 1000.5, float("nan"), float("inf"), -3.0])
def test_batch_megapixels_outside_its_range_is_refused(value):
    with pytest.raises(UserError, match=r"batch_megapixels must be in 1\.\.1000 \(megapixels detected together\)"):
        CropOptions(batch_megapixels=value)


def test_config_and_options_agree_on_the_budget():
    field = Config.model_fields["crop_batch_megapixels"]
    bounds = {key: getattr(m, key) for m in field.metadata for key in ("ge", "le") if hasattr(m, key)}
    assert field.default == CropOptions().batch_megapixels == 32.0
    assert bounds == {"ge": 1, "le": 1000}
    assert CropOptions(batch_megapixels=2.5).batch_pixels == 2_500_000


def test_crop_stage_detects_and_decodes_ahead_within_the_budget(tmp_path, faces, monkeypatch):
    """Images of 0.49 MP with a 1 MP budget: two per detection, at most two batches decoded ahead."""
    root = tmp_path / "input" / "person"
    root.mkdir(parents=True)
    for k in range(9):
        photo = np.full((700, 700, 3), 90 + 10 * k, np.uint8)
        photo[100:196, 100:196] = faces[k % 4]
        Image.fromarray(photo).save(root / f"{k}.png")
    started, detected, batches = [], [], []
    decode, detect = crop_module._decode, crop_module.MTCNN.detect

    def recording_decode(*args, **kwargs):
        started.append(1)
        return decode(*args, **kwargs)

    def recording_detect(self, images):
        batches.append([img.shape[0] * img.shape[1] for img in images])
        detected.extend(images)
        ahead.append(len(started) - len(detected))
        return detect(self, images)

    ahead: list[int] = []
    monkeypatch.setattr(crop_module, "_decode", recording_decode)
    monkeypatch.setattr(crop_module.MTCNN, "detect", recording_detect)
    options = CropOptions(image_size=32, batch_size=16, workers=1, batch_megapixels=1)
    summary = crop_shard(tmp_path / "input", tmp_path / "out", ["person"], options)
    assert summary["ok"] + summary["no_face"] == 9
    assert batches == [[490_000, 490_000]] * 4 + [[490_000]]
    assert max(ahead) <= 4  # 2 MP ahead of the detector, not 2 x 16 images
