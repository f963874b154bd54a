"""Box arithmetic, NMS and the one-face rule against hand-computed values."""

import cv2
import numpy as np
import pytest

from facenet_core.detect import boxes as bx
from facenet_core.detect import nms as nms_module
from facenet_core.detect import resize
from facenet_core.detect.nms import nms
from facenet_core.detect.resize import candidate_crops, crop_resized
from facenet_core.detect.select import choose_face, crop_box


def test_nms_union_counts_end_pixels():
    boxes = np.array([[0, 0, 9, 9, 0.9], [5, 0, 14, 9, 0.8]], dtype=np.float64)
    # +1 areas: 100 each, overlap 5 x 10 = 50, union 150 -> IoU 1/3
    assert nms(boxes, 0.34, "union").tolist() == [0, 1]
    assert nms(boxes, 0.33, "union").tolist() == [0]


def test_nms_min_divides_by_smaller_area():
    boxes = np.array([[0, 0, 19, 19, 0.5], [0, 0, 9, 9, 0.9]], dtype=np.float64)
    assert nms(boxes, 0.7, "union").tolist() == [1, 0]
    assert nms(boxes, 0.7, "min").tolist() == [1]


def test_nms_visits_boxes_in_numpy_argsort_order():
    rng = np.random.default_rng(0)
    scores = rng.choice([0.5, 0.99999988], size=40)
    boxes = np.hstack([np.tile([0.0, 0.0, 9.0, 9.0], (40, 1)), scores[:, None]])
    assert nms(boxes, 0.5, "union").tolist() == [int(np.argsort(scores)[-1])]


def _greedy_nms(boxes, threshold, method):
    """The reference's loop: keep the best remaining box, drop the rest that overlap it too much."""
    x1, y1, x2, y2, score = boxes[:, :5].T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(score), []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        smaller = np.minimum(area[i], area[rest])
        overlap = inter / smaller if method == "min" else inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return keep


@pytest.mark.parametrize("elements", [nms_module.BLOCK_ELEMENTS, 3000])  # 256-row blocks, or 5 rows for 600
@pytest.mark.parametrize("count", [1, 37, 600])
@pytest.mark.parametrize(("threshold", "method"), [(0.5, "union"), (0.7, "union"), (0.7, "min")])
def test_blocked_nms_keeps_what_the_greedy_loop_keeps(count, threshold, method, elements, monkeypatch):
    monkeypatch.setattr(nms_module, "BLOCK_ELEMENTS", elements)
    rng = np.random.default_rng(count)
    corner = rng.integers(0, 120, size=(count, 2)).astype(np.float64)
    size = rng.integers(4, 50, size=(count, 2)).astype(np.float64)
    scores = rng.choice([0.7, 0.95, 0.99999988], size=count)
    boxes = np.hstack([corner, corner + size, scores[:, None]])
    assert nms(boxes, threshold, method).tolist() == _greedy_nms(boxes, threshold, method)


def test_proposals_are_column_major_with_mirrored_regression_for_a_single_cell():
    prob = np.zeros((3, 4), np.float32)
    reg = np.arange(4 * 3 * 4, dtype=np.float32).reshape(4, 3, 4)
    prob[2, 0] = prob[0, 1] = 0.9
    two = bx.proposals(prob, reg, 1.0, 0.6)
    assert two[:, :4].tolist() == [[1, 5, 12, 16], [3, 1, 14, 12]]
    assert two[0, 5:].tolist() == reg[:, 2, 0].tolist()
    prob[0, 1] = 0
    one = bx.proposals(prob, reg, 0.5, 0.6)
    assert one[0, :4].tolist() == [2, 10, 24, 32]
    assert one[0, 5:].tolist() == reg[:, 2, 3].tolist()


def test_square_and_regress():
    box = np.array([[10.0, 20.0, 30.0, 60.0, 0.9]])
    assert bx.square(box)[0, :4].tolist() == [0.0, 20.0, 40.0, 60.0]
    moved = bx.regress(box, np.array([[0.1, 0.0, -0.1, 0.5]]))
    assert moved[0, :4].tolist() == pytest.approx([12.1, 20.0, 27.9, 80.5])
    assert box[0, 0] == 10.0


def test_choose_face_prefers_central_over_slightly_larger():
    boxes = np.array([[0, 0, 42, 42, 0.9], [80, 80, 120, 120, 0.9]], dtype=np.float64)
    assert choose_face(boxes, 200, 200) == 1
    boxes[0] = [80, 80, 120, 120, 0.8]
    assert choose_face(boxes, 200, 200) == 0


def test_crop_box_adds_half_margin_clips_and_truncates():
    box = np.array([5.7, 10.2, 90.9, 99.5])
    assert crop_box(box, 0, 100, 95) == (5, 10, 90, 99)
    assert crop_box(box, 32, 100, 95) == (0, 0, 95, 100)
    assert crop_box(box, 4, 200, 200) == (3, 8, 92, 101)


def test_candidate_crops_zero_fill_outside_the_image():
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    boxes = np.array([[2, 3, 7, 8, 0.9], [-1, 5, 4, 14, 0.8]])
    crops = candidate_crops(img, boxes, 6)
    np.testing.assert_array_equal(crops[0], img[2:8, 1:7].astype(np.float64))
    outside = np.zeros((10, 6, 3))
    outside[:6, 2:] = img[4:10, 0:4]
    np.testing.assert_array_equal(crops[1], cv2.resize(outside, (6, 6), interpolation=cv2.INTER_AREA))


def test_nms_drops_a_box_whose_overlap_is_nan_as_the_reference_does():
    # The second box is degenerate (zero area): 'min' divides 0 by 0, and the reference keeps only
    # boxes whose overlap is <= threshold, so the NaN overlap suppresses it.
    boxes = np.array([[0, 0, 10, 10, 0.9], [5, 5, 4, 4, 0.8], [20, 20, 30, 30, 0.7]], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert nms(boxes, 0.7, "min").tolist() == [0, 2] == _greedy_nms(boxes, 0.7, "min")


@pytest.mark.parametrize("band_bytes", [40_000, resize.BAND_BYTES])
@pytest.mark.parametrize("seed", range(2))
def test_large_boxes_shrunk_band_by_band_equal_opencv_on_the_whole_float64_crop(seed, band_bytes, monkeypatch):
    monkeypatch.setattr(resize, "BAND_BYTES", band_bytes)
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (900, 1300, 3), dtype=np.uint8)
    for k in range(6):
        # Odd boxes: any scale; even ones: multiples of 48 (OpenCV's block averages), some non-square.
        side = int(rng.integers(520, 1500)) if k % 2 else 48 * int(rng.integers(11, 30))
        x1, y1 = int(rng.integers(-300, 1000)), int(rng.integers(-300, 700))
        box = np.array([x1, y1, x1 + side - 1 + 48 * (k % 4 == 2), y1 + side - 1])
        assert (box[2] - box[0] + 1) * (box[3] - box[1] + 1) > resize.BANDED_PIXELS
        for size in (24, 48):
            expected = cv2.resize(resize._padded_crop(img, *box), (size, size), interpolation=cv2.INTER_AREA)
            found = np.empty_like(expected)
            crop_resized(img, box, size, found)
            np.testing.assert_array_equal(found, expected)
