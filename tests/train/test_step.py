"""train_step options (AMP, clipping, scaler) and the device-side metric sums."""

import dataclasses

import pytest
import torch
from torch import nn

from facenet_core.models import EmbeddingHead
from facenet_core.train.step import MetricSums, StepOptions, make_scaler, resolve_amp, train_step

CPU = torch.device("cpu")
OPTIONS = StepOptions(margin=1.0, semihard=False, amp_dtype=None, channels_last=False, grad_clip_norm=None)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), EmbeddingHead(4, 3))


def _batch():
    generator = torch.Generator().manual_seed(2)
    return [torch.randn(6, 3, 8, 8, generator=generator) for _ in range(3)]


def _step(options, scaler=None):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    stats = train_step(model, optimizer, scaler, _batch(), options, CPU)
    change = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    return stats, change


def test_stats_are_loss_kept_and_triplets_of_the_batch():
    stats, change = _step(OPTIONS)
    loss, kept, triplets = stats.tolist()
    assert triplets == 6 and 0 < kept <= 6 and loss > 0
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
    sums.add(torch.tensor([0.5, 3.0, 4.0]))
    sums.add(torch.tensor([0.25, 1.0, 4.0]))
    assert sums.read() == {"loss": 0.375, "kept_triplets": 4.0, "triplets": 8.0, "steps": 2.0}
    assert sums.read()["steps"] == 0
