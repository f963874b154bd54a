"""The inference copy of a model: batch norms folded into the convolutions, the same embeddings within
float rounding (bound: 1e-5 on unit-length embeddings), the model given left as it was, and models
that cannot be folded run as they are."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from facenet_core.data.transforms import eval_transform
from facenet_core.evaluate.embed import embed_images
from facenet_core.images import open_rgb
from facenet_core.models import create_model
from facenet_core.models.inference import inference_model

BOUND = 1e-5  # largest |difference| allowed between unit-length embeddings of the folded and plain model
MEAN, STD = [0.6071, 0.4609, 0.3944], [0.2457, 0.2175, 0.2129]


def trained_looking(architecture: str, dimension: int = 128) -> nn.Module:
    """A random model whose batch norms hold statistics and affine terms far from the identity, as a
    trained model's do (fresh ones fold to the identity and would prove nothing)."""
    torch.manual_seed(0)
    model = create_model(architecture, dimension)
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(channels, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(channels, generator=generator) * 0.2 - 0.1)
    return model


def batch_norms(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]


@pytest.mark.parametrize("architecture", ["resnet18", "mobilenetv2"])
def test_folded_copy_embeds_as_the_plain_model_on_random_inputs(architecture):
    model = trained_looking(architecture).eval()
    folded = inference_model(model)
    assert folded is not model and not batch_norms(folded) and batch_norms(model)
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        plain, fast = model(images), folded(images)
        fast_channels_last = folded(images.contiguous(memory_format=torch.channels_last))
    assert not torch.equal(plain, fast)  # the convolutions did change, so the check below means something
    torch.testing.assert_close(fast, plain, rtol=0, atol=BOUND)
    torch.testing.assert_close(fast_channels_last, plain, rtol=0, atol=BOUND)


def test_the_training_model_is_never_modified():
    model = trained_looking("resnet18").train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    folded = inference_model(model)
    assert model.training and all(module.training for module in batch_norms(model))
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[name], before[name]) for name in before)
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    # a training step on the model (batch statistics, updated running means, new weights) leaves the copy alone
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = folded(images)
    model(images).sum().backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= 0.1 * parameter.grad
    with torch.inference_mode():
        torch.testing.assert_close(folded(images), expected, rtol=0, atol=0)
    assert not torch.equal(model.layer1[0].bn1.running_mean, before["layer1.0.bn1.running_mean"])


class DataDependent(nn.Module):
    """A convolution and batch norm behind a branch on the input's values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        features = self.bn(self.conv(x))
        if features.mean() > 0:
            features = -features
        return F.normalize(features.flatten(1), dim=1)


def test_a_model_that_cannot_be_traced_runs_as_it_is(tmp_path):
    model = DataDependent()
    assert inference_model(model) is model
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"face_{i}.png" for i in range(4)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path)
    vectors, readable = embed_images(model, paths, image_size=12, mean=MEAN, std=STD, batch_size=2, device="cpu")
    model.eval()
    with torch.inference_mode():
        expected = torch.cat([model(eval_transform(12, MEAN, STD)(open_rgb(path))[None]) for path in paths])
    assert readable.all()
    np.testing.assert_allclose(vectors, expected.numpy(), rtol=0, atol=1e-6)


class SharedOutputs(nn.Module):
    """A convolution whose output also bypasses its batch norm, and one called twice: neither can absorb
    its batch norm; the one convolution used once, before a batch norm alone, can."""

    def __init__(self):
        super().__init__()
        self.bypassed, self.twice, self.single = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)
        self.bn1, self.bn2, self.bn3, self.bn4 = (nn.BatchNorm2d(4) for _ in range(4))

    def forward(self, x):
        y = self.bypassed(x)
        y = self.bn1(y) + y
        y = self.bn3(self.twice(self.bn2(self.twice(y))))
        return F.normalize(self.bn4(self.single(y)).flatten(1), dim=1)


def test_only_batch_norms_a_convolution_alone_feeds_are_folded():
    model = SharedOutputs()
    for norm in (model.bn1, model.bn2, model.bn3, model.bn4):
        norm.running_mean.uniform_(-0.2, 0.2)
        norm.running_var.uniform_(0.5, 2.0)
    model.eval()
    folded = inference_model(model)
    assert [name for name, module in folded.named_modules() if isinstance(module, nn.BatchNorm2d)] == [
        "bn1",
        "bn2",
        "bn3",
    ]
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        torch.testing.assert_close(folded(images), model(images), rtol=0, atol=BOUND)
    assert torch.equal(folded.twice.weight, model.twice.weight)  # left alone, not scaled twice


def test_a_model_without_batch_norm_is_returned_as_it_is():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    assert inference_model(model) is model


@pytest.mark.lfw
@pytest.mark.slow
def test_real_lfw_images_embed_as_with_the_plain_model(lfw_dir):
    """`embed_images` (folded model, channels_last, per-core parts) against the plain model on each image
    through the seed's transform alone: ResNet-34 at 140 px, as `facenet evaluate` runs it."""
    paths = sorted((lfw_dir / "lfw-deepfunneled").glob("A*/*.jpg"))[::40][:12]
    model = trained_looking("resnet34", 512)
    vectors, readable = embed_images(model, paths, image_size=140, mean=MEAN, std=STD, batch_size=8, device="cpu")
    assert model.training and batch_norms(model)  # put back as it came
    model.eval()
    with torch.inference_mode():
        plain = torch.cat([model(eval_transform(140, MEAN, STD)(open_rgb(path))[None]) for path in paths]).numpy()
    assert readable.all()
    np.testing.assert_allclose(vectors, plain, rtol=0, atol=BOUND)
    distances = np.linalg.norm(vectors[:-1] - vectors[1:], axis=1)
    np.testing.assert_allclose(distances, np.linalg.norm(plain[:-1] - plain[1:], axis=1), rtol=0, atol=2 * BOUND)
