"""Embedding each image once in batches, flip TTA, unreadable images, pair distances."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facenet_core.data.transforms import eval_transform
from facenet_core.evaluate.embed import embed_images, pair_distances
from facenet_core.images import open_rgb

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.2]


def reference_embedding(net, path, size=12, flip=False):
    x = eval_transform(size, MEAN, STD)(open_rgb(path))[None]
    with torch.no_grad():
        out = net(x)
        if flip:
            out = F.normalize(out + net(torch.flip(x, dims=[3])), dim=1)
    return out[0].numpy()


def test_each_image_once_in_batches(face_tree, colour_net):
    paths = sorted(face_tree.glob("*/*"))
    out, readable = embed_images(colour_net, paths, image_size=12, mean=MEAN, std=STD, batch_size=4, device="cpu")
    assert readable.all()
    assert out.shape == (18, 6) and out.dtype == np.float32
    assert colour_net.batches == [4, 4, 4, 4, 2]
    for i in (0, 7, 17):
        np.testing.assert_allclose(out[i], reference_embedding(colour_net, paths[i]), atol=1e-6)
    assert colour_net.training  # the model's mode is restored


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
