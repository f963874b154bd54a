"""Faces from photos in memory: the crops, boxes, scores and landmarks the crop stage records for the
same photos, whatever form the photo comes in; photos without a face; every face of a group photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facenet_core.errors import UserError
from facenet_core.inference.faces import detect_faces

from .conftest import ALIGNED_OPTIONS, OPTIONS

LANDMARK_COLUMNS = [f"lm_{axis}{k}" for k in range(1, 6) for axis in "xy"]


@pytest.mark.lfw
def test_faces_are_the_crop_stage_crops_pixel_for_pixel(photo_tree, photo_paths, crop_stage):
    rows, output = crop_stage
    found = detect_faces(photo_paths, OPTIONS)
    assert len(found) == len(photo_paths) == len(rows)
    for path, photo in zip(photo_paths, found, strict=True):
        row = rows[path.relative_to(photo_tree).as_posix()]
        assert row["status"] == "ok"
        assert (photo.width, photo.height) == (row["width"], row["height"])
        [face] = photo.faces
        assert face.box == (row["crop_x1"], row["crop_y1"], row["crop_x2"], row["crop_y2"])
        assert face.score == row["score"]
        assert [v for point in face.landmarks for v in point] == [row[column] for column in LANDMARK_COLUMNS]
        saved = np.asarray(Image.open(output / row["output"]))
        assert face.crop.shape == (224, 224, 3) and face.crop.dtype == np.uint8
        np.testing.assert_array_equal(face.crop, saved)
        assert not face.crop.flags.writeable


@pytest.mark.lfw
def test_aligned_faces_are_the_aligned_crop_stage_crops_pixel_for_pixel(
    photo_tree, photo_paths, crop_stage, aligned_crop_stage
):
    rows, output = aligned_crop_stage
    box_rows, box_output = crop_stage
    found = detect_faces(photo_paths, ALIGNED_OPTIONS)
    for path, photo in zip(photo_paths, found, strict=True):
        source = path.relative_to(photo_tree).as_posix()
        row = rows[source]
        assert row == box_rows[source]  # the same detection, face and row; only the crop differs
        [face] = photo.faces
        assert face.box == (row["crop_x1"], row["crop_y1"], row["crop_x2"], row["crop_y2"])
        saved = np.asarray(Image.open(output / row["output"]))
        np.testing.assert_array_equal(face.crop, saved)
        assert not np.array_equal(saved, np.asarray(Image.open(box_output / row["output"])))


@pytest.mark.lfw
def test_a_path_a_pil_image_and_an_array_give_the_same_faces(photo_paths):
    path = photo_paths[0]
    as_pil = Image.open(path)
    as_array = np.asarray(Image.open(path).convert("RGB"))
    by_path, by_pil, by_array = detect_faces([path, as_pil, as_array], OPTIONS)
    for other in (by_pil, by_array):
        assert [face.box for face in other.faces] == [face.box for face in by_path.faces]
        assert [face.score for face in other.faces] == [face.score for face in by_path.faces]
        np.testing.assert_array_equal(other.faces[0].crop, by_path.faces[0].crop)
    assert detect_faces([str(path)], OPTIONS)[0].faces[0].box == by_path.faces[0].box


@pytest.mark.lfw
def test_policy_all_finds_both_faces_of_two_photos_side_by_side(photo_paths):
    left, right = (np.asarray(Image.open(path).convert("RGB")) for path in (photo_paths[0], photo_paths[2]))
    pair = np.concatenate([left, right], axis=1)
    one, everyone = detect_faces([pair], OPTIONS)[0], detect_faces([pair], OPTIONS, policy="all")[0]
    assert (everyone.width, everyone.height) == (500, 250)
    assert len(one.faces) == 1 and len(everyone.faces) >= 2
    centres = [((face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2) for face in everyone.faces]
    # LFW photos are centred on their person: a face near the middle of each half.
    for middle in (125, 375):
        assert any(abs(x - middle) < 25 and abs(y - 125) < 25 for x, y in centres)
    assert any(face.box == one.faces[0].box for face in everyone.faces)
    for face in everyone.faces:
        assert face.crop.shape == (224, 224, 3)
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= 500 and 0 <= y1 < y2 <= 250


def test_a_photo_without_a_face_gives_no_faces_and_no_error():
    blank = np.full((120, 160, 3), 128, np.uint8)
    tiny = np.zeros((12, 12, 3), np.uint8)  # smaller than the minimum face size: not searched
    threads = torch.get_num_threads()
    found = detect_faces([blank, tiny], OPTIONS, policy="all")
    assert torch.get_num_threads() == threads  # detection's one thread is given back
    assert [(photo.width, photo.height, photo.faces) for photo in found] == [(160, 120, ()), (12, 12, ())]
    assert detect_faces([], OPTIONS) == []


def test_unreadable_files_and_malformed_arrays_are_named(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=f"image {broken} cannot be read"):
        detect_faces([broken], OPTIONS)
    with pytest.raises(UserError, match="image 1: expected a uint8 H x W x 3 RGB array, got float32"):
        detect_faces([np.zeros((30, 30, 3), np.uint8), np.zeros((30, 30, 3), np.float32)], OPTIONS)
    with pytest.raises(ValueError, match="policy"):
        detect_faces([], OPTIONS, policy="largest")


@pytest.mark.lfw
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: faces on a GPU need one")
def test_faces_on_cuda_are_the_cpu_faces(photo_paths):
    on_cpu = detect_faces(photo_paths, OPTIONS, policy="all")
    on_gpu = detect_faces(photo_paths, OPTIONS, policy="all", device="cuda")
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        assert [face.box for face in gpu.faces] == [face.box for face in cpu.faces]
        for a, b in zip(cpu.faces, gpu.faces, strict=True):
            np.testing.assert_array_equal(a.crop, b.crop)
            assert b.score == pytest.approx(a.score, abs=1e-4)
