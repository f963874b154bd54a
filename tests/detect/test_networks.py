"""Weight loading, TF-style pooling, and exactness of batching across images of different sizes."""

import io
import pickle

import lz4.frame
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facenet_core.detect import weights
from facenet_core.detect.detector import MTCNN, Chunking, _chunks_by_pixels
from facenet_core.detect.nets import PNet, _same_max_pool, _valid_max_pool


@pytest.fixture(scope="module")
def detector():
    return MTCNN()


def test_weights_have_keras_shapes():
    pnet = weights.load_weights("pnet")
    assert [a.shape for a in pnet[:3]] == [(3, 3, 3, 10), (10,), (1, 1, 10)]
    assert pnet[9].shape == (1, 1, 32, 4) and pnet[11].shape == (1, 1, 32, 2)


def test_weights_with_wrong_hash_are_refused(tmp_path):
    fake = tmp_path / "pnet.lz4"
    fake.write_bytes(lz4.frame.compress(pickle.dumps([np.zeros(3)])))
    with pytest.raises(ValueError, match="sha256"):
        weights.load_weights("pnet", fake)


def test_unpickler_refuses_other_globals():
    payload = io.BytesIO(pickle.dumps(print))
    with pytest.raises(ValueError, match="builtins.print"):
        weights._RestrictedUnpickler("x", payload, ensure_native_byte_order=True).load()


@pytest.mark.parametrize("size", [7, 8, 22, 23])
@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2)])
def test_same_pool_matches_tensorflow_padding(size, kernel, stride):
    x = torch.randn(1, 2, size, size + 1)
    expected = []
    for dim in (x.shape[3], x.shape[2]):
        total = max((-(-dim // stride) - 1) * stride + kernel - dim, 0)
        expected += [total // 2, total - total // 2]
    reference = F.max_pool2d(F.pad(x, expected, value=float("-inf")), kernel, stride)
    assert torch.equal(_same_max_pool(x, kernel, stride), reference)


@pytest.mark.parametrize("size", [7, 8, 22, 23])
@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2)])
def test_valid_pool_matches_max_pool2d(size, kernel, stride):
    x = torch.randn(3, 4, size, size + 3)
    assert torch.equal(_valid_max_pool(x, kernel, stride), F.max_pool2d(x, kernel, stride))


def test_pnet_masked_padding_changes_no_valid_cell():
    pnet = PNet().eval()
    generator = torch.Generator().manual_seed(0)
    small, large = torch.randn(1, 3, 31, 27, generator=generator), torch.randn(1, 3, 40, 44, generator=generator)
    padded = torch.zeros(2, 3, 40, 44)
    padded[0, :, :31, :27], padded[1] = small[0], large[0]
    with torch.inference_mode():
        reg, prob = pnet(padded, torch.tensor([[31, 27], [40, 44]]))
        reg_small, prob_small = pnet(small)
        reg_large, prob_large = pnet(large)
    oh, ow = prob_small.shape[2:]
    torch.testing.assert_close(prob[0:1, :, :oh, :ow], prob_small, rtol=0, atol=1e-5)
    torch.testing.assert_close(reg[1:2], reg_large, rtol=0, atol=1e-5)


def test_batched_detection_equals_one_at_a_time(detector, faces):
    pictures = [faces[0], faces[1][:80], np.pad(faces[2], ((10, 4), (0, 14), (0, 0)), mode="edge"), faces[3]]
    alone = [detector.detect([p])[0] for p in pictures]
    together = detector.detect(pictures)
    for a, b in zip(alone, together, strict=True):
        assert a.boxes.shape == b.boxes.shape == (1, 5)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.points, b.points, atol=1e-4)


def test_blank_image_has_no_face(detector):
    found = detector.detect([np.full((60, 80, 3), 200, np.uint8)])[0]
    assert found.boxes.shape == (0, 5) and found.points.shape == (0, 10)


def test_chunked_network_calls_find_the_same_faces(faces):
    pictures = [faces[0], faces[1][:80], faces[2], faces[3]]
    whole, chunked = MTCNN(), MTCNN()
    chunked.chunking = Chunking(pnet_pixels=1, rnet_crops=3, onet_crops=2)  # one image / a few crops per call
    for a, b in zip(whole.detect(pictures), chunked.detect(pictures), strict=True):
        assert a.boxes.shape == b.boxes.shape == (1, 5)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.points, b.points, atol=1e-4)


def test_pnet_chunks_count_the_padded_size_of_mixed_shapes():
    members = sorted([((12, 2400), 0), ((2400, 12), 1), ((100, 100), 2), ((120, 90), 3)])
    chunks = _chunks_by_pixels(members, 250_000)
    for chunk in chunks:
        height = max(h for (h, _), _ in chunk)
        width = max(w for (_, w), _ in chunk)
        assert len(chunk) == 1 or len(chunk) * height * width <= 250_000
    assert sorted(i for chunk in chunks for _, i in chunk) == [0, 1, 2, 3]
    assert [[i for _, i in chunk] for chunk in chunks] == [[0], [2, 3], [1]]  # one batch of all four: 23M pixels
