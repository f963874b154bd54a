"""Triplet and PK datasets and loaders: shapes, labels, RGB conversion, rank slicing, seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facenet_core.data.loader import (
    PKDataset,
    TripletDataset,
    make_pk_loader,
    make_triplet_loader,
    pk_rank_slice,
    rank_slice,
)
from facenet_core.data.manifest import build_manifest, read_manifest
from facenet_core.data.pk_batches import generate_pk_batches
from facenet_core.data.transforms import eval_transform, train_transform
from facenet_core.data.triplets import generate_triplets
from facenet_core.images import open_rgb

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture
def manifest(image_tree, tmp_path):
    root = image_tree({"ann": 3, "bob": 2, "cid": 4, "dee": 1}, size=(20, 20))
    build_manifest(root, tmp_path / "m.parquet", workers=1, progress=False)
    return read_manifest(tmp_path / "m.parquet")


def _triplets(manifest, iterations=3, batch_size=4):
    return generate_triplets(
        manifest.labels,
        seed=3,
        epoch=0,
        iterations_per_epoch=iterations,
        batch_size=batch_size,
        num_human_identities_per_batch=3,
    )


def _loader(manifest, triplets, **kw):
    options = dict(image_size=12, mean=MEAN, std=STD, batch_size=4, num_workers=0, seed=1, epoch=0)
    return make_triplet_loader(manifest, triplets, **{**options, **kw})


def test_batches_have_shapes_and_labels_of_their_rows(manifest):
    triplets = _triplets(manifest)
    batches = list(_loader(manifest, triplets))
    assert len(batches) == 3
    for b, (anchors, positives, negatives, labels) in enumerate(batches):
        for images in (anchors, positives, negatives):
            assert images.shape == (4, 3, 12, 12) and images.dtype == torch.float32
        assert labels.dtype == torch.int64
        expected = manifest.labels[triplets[b * 4 : (b + 1) * 4]]
        assert np.array_equal(labels.numpy(), expected)
        assert (labels[:, 0] == labels[:, 1]).all() and (labels[:, 0] != labels[:, 2]).all()


def test_rank_takes_its_slice_of_every_block(manifest):
    triplets = _triplets(manifest, iterations=2, batch_size=4)
    share = rank_slice(triplets, 4, rank=1, world_size=2)
    assert np.array_equal(share, triplets[[2, 3, 6, 7]])
    loader = _loader(manifest, triplets, rank=1, world_size=2)
    labels = torch.cat([batch[3] for batch in loader]).numpy()
    assert np.array_equal(labels, manifest.labels[triplets[[2, 3, 6, 7]]])
    with pytest.raises(ValueError, match="world_size"):
        rank_slice(triplets, 4, rank=0, world_size=3)
    with pytest.raises(ValueError, match="rank"):
        rank_slice(triplets, 4, rank=2, world_size=2)


def test_augmentations_depend_on_seed_and_epoch_not_on_workers(manifest):
    triplets = _triplets(manifest, iterations=2)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = [b[0] for b in _loader(manifest, triplets, num_workers=0, seed=5, epoch=2)]
    assert torch.equal(torch.random.get_rng_state(), before), "loading leaves the caller's RNG alone"
    two = [b[0] for b in _loader(manifest, triplets, num_workers=2, seed=5, epoch=2)]
    one = [b[0] for b in _loader(manifest, triplets, num_workers=1, seed=5, epoch=2)]
    other = [b[0] for b in _loader(manifest, triplets, num_workers=1, seed=5, epoch=3)]
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(first, two, one, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_dataset_item_matches_eval_transform_by_hand(manifest):
    triplets = _triplets(manifest)
    dataset = TripletDataset(manifest, triplets, eval_transform(20, MEAN, STD))
    anchor, _, _, labels = dataset[0]
    pixels = np.asarray(Image.open(manifest.abspath(int(triplets[0, 0]))), dtype=np.float32) / 255.0
    expected = (pixels - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    assert torch.allclose(anchor, torch.from_numpy(expected).permute(2, 0, 1), atol=1e-5)
    assert labels.tolist() == manifest.labels[triplets[0]].tolist()


def test_dataset_refuses_rows_outside_the_manifest(manifest):
    bad = np.array([[0, 1, manifest.num_images]], dtype=np.int32)
    with pytest.raises(ValueError, match="another manifest"):
        TripletDataset(manifest, bad, eval_transform(8, MEAN, STD))


def _pk_batches(manifest, iterations=3, p=2, k=3):
    return generate_pk_batches(
        manifest.labels, seed=3, epoch=0, iterations_per_epoch=iterations, pk_identities=p, pk_images=k
    )


def _pk_loader(manifest, batches, **kw):
    options = dict(pk_images=3, image_size=12, mean=MEAN, std=STD, num_workers=0, seed=1, epoch=0)
    return make_pk_loader(manifest, batches, **{**options, **kw})


def test_pk_batches_are_the_rows_images_and_labels(manifest):
    batches = _pk_batches(manifest)
    loaded = list(_pk_loader(manifest, batches))
    assert len(loaded) == 3
    dataset = PKDataset(manifest, batches, eval_transform(12, MEAN, STD))
    for b, (images, labels) in enumerate(loaded):
        assert images.shape == (6, 3, 12, 12) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and labels.shape == (6,)
        assert np.array_equal(labels.numpy(), manifest.labels[batches[b]])
    image, label = dataset[4]  # batch 0, slot 4
    by_hand = eval_transform(12, MEAN, STD)(open_rgb(manifest.abspath(int(batches[0, 4]))))
    assert torch.equal(image, by_hand) and int(label) == manifest.labels[batches[0, 4]]


def test_pk_ranks_take_whole_identities_and_partition_each_batch(manifest):
    batches = _pk_batches(manifest, iterations=4, p=2, k=2)
    shares = [pk_rank_slice(batches, 2, rank, 2) for rank in (0, 1)]
    assert np.array_equal(shares[0], batches[:, :2]) and np.array_equal(shares[1], batches[:, 2:])
    assert all((manifest.labels[share][:, 0] == manifest.labels[share][:, 1]).all() for share in shares)
    assert np.array_equal(pk_rank_slice(batches, 2, 0, 1), batches)
    loaded = [_pk_loader(manifest, batches, pk_images=2, rank=rank, world_size=2) for rank in (0, 1)]
    for share, loader in zip(shares, loaded, strict=True):
        labels = torch.cat([labels for _, labels in loader]).numpy()
        assert np.array_equal(labels, manifest.labels[share].ravel())
    with pytest.raises(ValueError, match="pk_identities=2 must be divisible by world_size=3"):
        pk_rank_slice(batches, 2, 0, 3)
    with pytest.raises(ValueError, match="rank"):
        pk_rank_slice(batches, 2, 2, 2)
    with pytest.raises(ValueError, match="not whole identities of pk_images=3"):
        pk_rank_slice(batches, 3, 0, 1)


def test_pk_augmentations_depend_on_position_not_on_workers_or_processes(manifest):
    batches = _pk_batches(manifest, iterations=2, p=2, k=2)
    same = {"pk_images": 2, "seed": 5, "epoch": 2}
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = [images for images, _ in _pk_loader(manifest, batches, num_workers=0, **same)]
    assert torch.equal(torch.random.get_rng_state(), before), "loading leaves the caller's RNG alone"
    two = [images for images, _ in _pk_loader(manifest, batches, num_workers=2, **same)]
    other = [images for images, _ in _pk_loader(manifest, batches, **{**same, "epoch": 3})]
    assert all(torch.equal(a, b) for a, b in zip(first, two, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    for rank in (0, 1):
        share = [images for images, _ in _pk_loader(manifest, batches, rank=rank, world_size=2, **same)]
        for b, images in enumerate(share):
            assert torch.equal(images, first[b][2 * rank : 2 * rank + 2]), "a rank's images are the global batch's"


def test_pk_dataset_refuses_rows_outside_the_manifest(manifest):
    with pytest.raises(ValueError, match="another manifest"):
        PKDataset(manifest, np.array([[0, manifest.num_images]], dtype=np.int32), eval_transform(8, MEAN, STD))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "RGB"])
def test_open_rgb_converts_every_mode(tmp_path, mode):
    pixels = np.full((4, 5, 3), 120, dtype=np.uint8)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"img{suffix}"
    image = Image.fromarray(pixels, "RGB")
    image = image.quantize(4) if mode == "P" else image.convert(mode)
    image.save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    image = open_rgb(path)
    assert image.mode == "RGB" and image.size == (5, 4)
    assert np.abs(np.asarray(image, dtype=int) - 120).max() <= 3


def test_open_rgb_scales_16_bit_grey(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((3, 3), 65535 // 2, dtype=np.uint16)).save(path)
    image = open_rgb(path)
    assert image.mode == "RGB"
    assert np.asarray(image)[0, 0].tolist() == [127, 127, 127]


def test_train_transform_outputs_normalised_rgb_tensor(tmp_path):
    image = Image.fromarray(np.full((30, 30), 200, dtype=np.uint8), "L")
    tensor = train_transform(10, MEAN, STD)(image)
    assert tensor.shape == (3, 10, 10)
    centre = tensor[:, 5, 5]
    expected = (200 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(centre, expected, atol=1e-4)
