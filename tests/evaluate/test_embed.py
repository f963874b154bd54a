"""Embedding each image once in batches, flip TTA, unreadable images, pair distances; the fast path
(decoding threads, batched normalisation, channels_last) against the plain per-image transform."""

import re
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from facenet_core.data.transforms import eval_pixels, eval_transform, normalize_pixels
from facenet_core.evaluate import embed as embed_module
from facenet_core.evaluate.embed import decode_threads, embed_images, pair_distances, pixel_batches
from facenet_core.images import open_rgb
from facenet_core.models import create_model

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.2]


def reference_embedding(net, path, size=12, flip=False):
    x = eval_transform(size, MEAN, STD)(open_rgb(path))[None]
    with torch.no_grad():
        out = net(x)
        if flip:
            out = F.normalize(out + net(torch.flip(x, dims=[3])), dim=1)
    return out[0].numpy()


@pytest.fixture(params=[1, 2], ids=["1-torch-thread", "2-torch-threads"])
def torch_threads(request):
    saved = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(saved)


def test_each_image_once_in_batches(face_tree, colour_net, torch_threads):
    paths = sorted(face_tree.glob("*/*"))
    out, readable = embed_images(colour_net, paths, image_size=12, mean=MEAN, std=STD, batch_size=4, device="cpu")
    assert readable.all()
    assert out.shape == (18, 6) and out.dtype == np.float32
    # each batch of 4 (the last of 2) is embedded in one part per torch thread
    parts = {1: [4, 4, 4, 4, 2], 2: [2] * 8 + [1, 1]}[torch_threads]
    assert sorted(colour_net.batches, reverse=True) == parts
    for i in (0, 7, 17):
        np.testing.assert_allclose(out[i], reference_embedding(colour_net, paths[i]), atol=1e-6)
    assert colour_net.training  # the model's mode is restored
    assert torch.get_num_threads() == torch_threads  # and the caller's torch thread count


def test_flip_tta_sums_both_views(face_tree, colour_net):
    paths = sorted(face_tree.glob("*/*"))[:3]
    plain, _ = embed_images(colour_net, paths, image_size=12, mean=MEAN, std=STD, batch_size=8, device="cpu")
    flipped, _ = embed_images(
        colour_net, paths, image_size=12, mean=MEAN, std=STD, batch_size=8, device="cpu", flip_tta=True
    )
    assert not np.allclose(plain, flipped)
    np.testing.assert_allclose(flipped[1], reference_embedding(colour_net, paths[1], flip=True), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-6)
    # columns are (channel, half) pairs; the mirror swaps the halves, so the sum makes them equal
    np.testing.assert_allclose(flipped[:, 0::2], flipped[:, 1::2], atol=1e-6)
    assert not np.allclose(plain[:, 0::2], plain[:, 1::2])


def test_unreadable_image_is_marked(face_tree, colour_net):
    paths = sorted(face_tree.glob("*/*"))[:4]
    paths[2].write_bytes(b"not an image")
    out, readable = embed_images(colour_net, paths, image_size=12, mean=MEAN, std=STD, batch_size=2, device="cpu")
    assert readable.tolist() == [True, True, False, True]
    np.testing.assert_allclose(out[3], reference_embedding(colour_net, paths[3]), atol=1e-6)
    paths[0].write_bytes(b"")
    paths[1].write_bytes(b"")
    paths[3].write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 4"):
        embed_images(colour_net, paths, image_size=12, mean=MEAN, std=STD, batch_size=2, device="cpu")


def test_pair_distances():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [2.0, 0.0]], dtype=np.float32)
    left, right = np.array([0, 0, 2, 0]), np.array([1, 2, 2, 3])
    np.testing.assert_allclose(pair_distances(emb, left, right), [np.sqrt(2), np.sqrt(0.8), 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(pair_distances(emb, left, right, "cosine"), [1.0, 0.4, 0.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="distance_metric"):
        pair_distances(emb, left, right, "manhattan")


def test_batched_pixels_equal_the_eval_transform_bit_for_bit(face_tree, tmp_path):
    images = [open_rgb(path) for path in sorted(face_tree.glob("*/*"))]
    rng = np.random.default_rng(0)
    images.append(Image.fromarray(rng.integers(0, 256, (30, 17, 3), dtype=np.uint8)))  # not square: squashed
    images.append(Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8), mode="L"))  # already 12 px
    images.append(Image.fromarray(rng.integers(0, 256, (25, 25, 4), dtype=np.uint8), mode="RGBA"))
    for size in (12, 7):
        expected = torch.stack([eval_transform(size, MEAN, STD)(image) for image in images])
        pixels = torch.from_numpy(np.stack([eval_pixels(image, size) for image in images]))
        batched = normalize_pixels(pixels, MEAN, STD)
        assert batched.dtype == torch.float32 and batched.shape == expected.shape
        assert torch.equal(batched, expected)
        assert batched.is_contiguous(memory_format=torch.channels_last)


def test_fast_path_equals_the_plain_path(face_tree):
    """Decoding threads, batched normalisation and channels_last give today's embeddings of a real
    convolutional network: each image through eval_transform and the model alone, NCHW, no threads."""
    torch.manual_seed(0)
    net = create_model("resnet18", 16).eval()
    paths = sorted(face_tree.glob("*/*"))
    with torch.inference_mode():
        plain = np.concatenate([net(eval_transform(32, MEAN, STD)(open_rgb(p))[None]).numpy() for p in paths])
    runs = [
        embed_images(net, paths, image_size=32, mean=MEAN, std=STD, batch_size=b, device="cpu", num_workers=w)
        for b, w in ((5, 0), (5, 3), (64, None))
    ]
    for vectors, readable in runs:
        assert readable.all()
        np.testing.assert_allclose(vectors, plain, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(runs[0].vectors, runs[1].vectors)  # threads change nothing


class RecordingNet(torch.nn.Module):
    """The colour net's embedding; logs each forward pass's start ("F") and end ("f"), its thread and
    the torch thread count it ran with."""

    def __init__(self, events):
        super().__init__()
        self.events = events
        self.runs: list[tuple[str, int]] = []

    def forward(self, x):
        self.events.append("F")
        self.runs.append((threading.current_thread().name, torch.get_num_threads()))
        time.sleep(0.05)  # room for a decoding thread to run, were one still busy
        out = F.normalize(F.adaptive_avg_pool2d(x, (1, 2)).flatten(1), dim=1)
        self.events.append("f")
        return out


def test_cpu_decoding_and_embedding_take_turns_each_on_every_core(face_tree, monkeypatch, torch_threads):
    events, decoders = [], set()

    def decode(image, size):
        events.append("d")
        decoders.add(threading.current_thread().name)
        return eval_pixels(image, size)

    monkeypatch.setattr(embed_module, "eval_pixels", decode)
    paths = sorted(face_tree.glob("*/*"))
    net = RecordingNet(events)
    embed_images(net, paths, image_size=12, mean=MEAN, std=STD, batch_size=4, device="cpu", num_workers=3)
    assert decoders and all(name.startswith("decode") for name in decoders)
    # a batch is decoded, then embedded in one part per torch thread; nothing is decoded meanwhile
    parts = "Ff" if torch_threads == 1 else "(FFff|FfFf)"
    assert re.fullmatch(f"(dddd{parts}){{4}}dd{parts}", "".join(events)), "".join(events)
    if torch_threads == 1:
        assert {count for _, count in net.runs} == {1} and {name for name, _ in net.runs} == {"MainThread"}
    else:  # one core each: parts in threads of their own, one torch thread each
        assert all(name.startswith("embed") and count == 1 for name, count in net.runs)
    assert torch.get_num_threads() == torch_threads


def test_pixel_batches_keep_order_and_mark_unreadable_files(face_tree):
    paths = sorted(face_tree.glob("*/*"))[:7]
    paths[3].write_bytes(b"not an image")
    expected = [eval_pixels(open_rgb(p), 12) if i != 3 else None for i, p in enumerate(paths)]
    for threads, ahead in ((0, False), (2, False), (2, True)):
        batches = list(pixel_batches(paths, 12, 3, threads, ahead))
        assert [len(batch) for batch in batches] == [3, 3, 1]
        flat = [image for batch in batches for image in batch]
        assert flat[3] is None
        for got, want in zip(flat, expected, strict=True):
            if want is not None:
                np.testing.assert_array_equal(got, want)


def test_ahead_decodes_the_next_batch_while_the_caller_works(face_tree, monkeypatch):
    decoded = []
    monkeypatch.setattr(embed_module, "eval_pixels", lambda image, size: decoded.append(1) or np.zeros((size, size, 3)))
    paths = sorted(face_tree.glob("*/*"))[:6]
    batches = pixel_batches(paths, 12, 3, 2, ahead=True)
    next(batches)
    deadline = time.monotonic() + 10
    while len(decoded) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(decoded) == 6  # the second batch was decoded before it was asked for
    batches.close()


def test_decode_threads_default():
    assert 1 <= decode_threads() <= 8
