"""train_step options (AMP, clipping, scaler), its seed and mined losses on either batch shape, and the
device-side metric sums."""

import dataclasses

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from facenet_core.models import EmbeddingHead
from facenet_core.train.mining import mine
from facenet_core.train.step import (
    STEP_STATS,
    MetricSums,
    StepOptions,
    labelled_images,
    make_scaler,
    resolve_amp,
    step_metrics,
    train_step,
)

CPU = torch.device("cpu")
OPTIONS = StepOptions(margin=1.0, semihard=False, amp_dtype=None, channels_last=False, grad_clip_norm=None)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), EmbeddingHead(4, 3))


def _batch():
    generator = torch.Generator().manual_seed(2)
    return [torch.randn(6, 3, 8, 8, generator=generator) for _ in range(3)]


def _labelled_triplet_batch():
    """6 triplets over 4 identities: (anchors, positives, negatives, labels (6, 3))."""
    labels = torch.tensor([[0, 0, 1], [1, 1, 2], [2, 2, 3], [3, 3, 0], [0, 0, 2], [1, 1, 3]])
    return [*_batch(), labels]


def _pk_batch():
    """P=3 identities x K=4 images, each identity's images contiguous."""
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(12, 3, 8, 8, generator=generator), torch.arange(3).repeat_interleave(4)]


def _step(options, scaler=None, batch=None):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    stats = train_step(model, optimizer, scaler, batch or _batch(), options, CPU)
    change = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    return stats, change


def test_seed_stats_are_loss_kept_and_triplets_of_the_batch():
    stats, change = _step(OPTIONS)
    values = dict(zip(STEP_STATS, stats.tolist(), strict=True))
    assert values["considered"] == 6 and 0 < values["active"] <= 6 and values["loss"] > 0
    assert values["images"] == 18
    assert 0 < values["pos_dist_sum"] and 0 < values["neg_dist_sum"]
    assert change.abs().max() > 0


def test_labelled_images_follow_the_concatenation_order():
    anchors, positives, negatives, labels = _labelled_triplet_batch()
    images, image_labels = labelled_images([anchors, positives, negatives, labels])
    assert torch.equal(images, torch.cat((anchors, positives, negatives)))
    assert torch.equal(image_labels, torch.cat((labels[:, 0], labels[:, 1], labels[:, 2])))
    pk_images, pk_labels = _pk_batch()
    assert labelled_images([pk_images, pk_labels])[0] is pk_images


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean"])
@pytest.mark.parametrize("mining", ["batch_hard", "batch_semihard", "batch_all"])
@pytest.mark.parametrize("shape", ["triplets", "pk"])
def test_each_mining_trains_on_either_batch_shape(mining, distance, shape):
    batch = _labelled_triplet_batch() if shape == "triplets" else _pk_batch()
    options = dataclasses.replace(OPTIONS, mining=mining, distance=distance, margin=0.5)
    images, labels = labelled_images(batch)
    with torch.no_grad():
        expected = mine(_model()(images), labels, mining, 0.5, distance)
    stats, change = _step(options, batch=batch)
    values = dict(zip(STEP_STATS, stats.tolist(), strict=True))
    assert values["images"] == len(images) == (18 if shape == "triplets" else 12)
    assert values["loss"] == pytest.approx(float(expected.loss()), rel=1e-5)
    assert values["active"] == int(expected.active) and values["considered"] == int(expected.considered)
    assert 0 < values["active"] <= values["considered"]
    mean_positive, mean_negative = (values[k] / values["considered"] for k in ("pos_dist_sum", "neg_dist_sum"))
    assert 0 < mean_positive and 0 < mean_negative <= (2.0 if distance == "euclidean" else 4.0)
    assert change.abs().max() > 0


def test_gradient_clipping_bounds_the_update():
    _, free = _step(OPTIONS)
    _, clipped = _step(dataclasses.replace(OPTIONS, grad_clip_norm=1e-3))
    assert free.norm() > 1e-2
    assert clipped.norm() == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_stay_close_to_fp32(amp):
    dtype = resolve_amp(amp, CPU)
    reference, ref_change = _step(OPTIONS)
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0) if amp == "fp16" else None
    stats, change = _step(dataclasses.replace(OPTIONS, amp_dtype=dtype), scaler)
    assert torch.isfinite(stats).all()
    assert stats[1] == reference[1]
    assert stats[0] == pytest.approx(reference[0].item(), abs=0.05)
    assert torch.nn.functional.cosine_similarity(change, ref_change, dim=0) > 0.95


def test_amp_auto_is_off_on_the_cpu_and_scaler_only_for_fp16():
    assert resolve_amp("auto", CPU) is None
    assert resolve_amp("bf16", CPU) is torch.bfloat16
    assert make_scaler(torch.bfloat16, CPU) is None
    assert isinstance(make_scaler(torch.float16, CPU), torch.amp.GradScaler)


def test_channels_last_gives_the_same_step():
    _, plain = _step(OPTIONS)
    model = _model().to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    train_step(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        None,
        _batch(),
        dataclasses.replace(OPTIONS, channels_last=True),
        CPU,
    )
    change = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    torch.testing.assert_close(change, plain, rtol=1e-4, atol=1e-6)


def test_metric_sums_average_loss_and_reset_on_read():
    sums = MetricSums(CPU)
    sums.add(torch.tensor([0.5, 3.0, 4.0, 2.0, 3.0, 12.0]))
    sums.add(torch.tensor([0.25, 1.0, 4.0, 1.0, 5.0, 12.0]))
    assert sums.read() == {
        "loss": 0.375,
        "active": 4.0,
        "considered": 8.0,
        "pos_dist_sum": 3.0,
        "neg_dist_sum": 8.0,
        "images": 24.0,
        "steps": 2.0,
    }
    assert sums.read()["steps"] == 0


def test_step_metrics_are_fractions_means_and_rates():
    sums = {"loss": 0.3, "active": 4.0, "considered": 8.0, "pos_dist_sum": 6.0, "neg_dist_sum": 10.0, "images": 24.0}
    mined = step_metrics(sums, seconds=2.0, mining="batch_hard")
    assert mined == {
        "loss": 0.3,
        "active_fraction": 0.5,
        "positive_distance": 0.75,
        "negative_distance": 1.25,
        "images_per_second": 12.0,
    }
    seed = step_metrics(sums, seconds=2.0, mining="seed")
    assert seed == {**mined, "kept_triplets": 4.0, "kept_fraction": 0.5}
    nothing = dict.fromkeys(("active", "considered", "pos_dist_sum", "neg_dist_sum"), 0.0)
    empty = step_metrics({**sums, **nothing}, seconds=2.0, mining="batch_all")
    assert empty["active_fraction"] == empty["positive_distance"] == empty["negative_distance"] == 0.0


class _LinearEmbedder(nn.Module):
    """Flattened pixels -> unit embeddings."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 4 * 4, 8)

    def forward(self, images):
        return torch.nn.functional.normalize(self.linear(images.flatten(1)), dim=1)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean"])
@pytest.mark.parametrize("mining", ["batch_hard", "batch_semihard", "batch_all"])
def test_mined_steps_separate_identities(mining, distance):
    """PK batches of 8 identities x 4 noisy views: over 60 steps the loss falls and the mean negative
    distance pulls away from the mean positive one (first 10 steps against the last 10)."""
    generator = torch.Generator().manual_seed(5)
    centres = torch.randn(8, 3, 4, 4, generator=generator)
    labels = torch.arange(8).repeat_interleave(4)
    model = _LinearEmbedder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    options = dataclasses.replace(OPTIONS, mining=mining, distance=distance, margin=0.5)
    gaps, losses = [], []
    for _ in range(60):
        images = centres[labels] + 1.5 * torch.randn(32, 3, 4, 4, generator=generator)
        stats = dict(zip(STEP_STATS, train_step(model, optimizer, None, (images, labels), options, CPU), strict=True))
        gaps.append(float((stats["neg_dist_sum"] - stats["pos_dist_sum"]) / stats["considered"]))
        losses.append(float(stats["loss"]))
    first, last = slice(0, 10), slice(50, 60)
    assert sum(losses[last]) < 0.8 * sum(losses[first])
    assert sum(gaps[last]) / 10 > sum(gaps[first]) / 10 + 0.1


class _HostReads(TorchDispatchMode):
    """Records the ops that make the host wait for the device: a tensor read as a Python number,
    and anything whose output shape depends on the data (nonzero, boolean indexing, masked_select)."""

    DATA_DEPENDENT = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default"}

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        boolean_index = name.startswith("aten.index.") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ()) or ()
        )
        if name in self.DATA_DEPENDENT or boolean_index:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("mining", ["seed", "batch_hard", "batch_semihard", "batch_all"])
def test_a_step_never_waits_on_the_host(mining):
    batch = _batch() if mining == "seed" else _pk_batch()
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    options = dataclasses.replace(OPTIONS, mining=mining, grad_clip_norm=1.0)
    with _HostReads() as reads:
        train_step(model, optimizer, None, batch, options, CPU)
    assert reads.seen == []
    with _HostReads() as reads:  # the probe sees what it must
        int(torch.tensor([1.0, 2.0])[torch.tensor([True, False])].sum())
    assert reads.seen == ["aten.index.Tensor", "aten._local_scalar_dense.default"]
