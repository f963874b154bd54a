"""create_model: the seed's heads, unit-norm embeddings, offline-only pretrained weights."""

import pytest
import torch
import torchvision

from facenet_core.config import Config
from facenet_core.models import create_model, unwrap_model
from facenet_core.models import pretrained as pretrained_module


@pytest.mark.parametrize(
    ("architecture", "head", "features"),
    [("resnet18", "fc", 512), ("resnet34", "fc", 512), ("resnet50", "fc", 2048), ("mobilenetv2", "classifier", 1280)],
)
def test_head_is_bias_free_linear_named_as_the_seed(architecture, head, features):
    model = create_model(architecture, 24)
    state = model.state_dict()
    assert state[f"{head}.weight"].shape == (24, features)
    assert not any(key.startswith(f"{head}.") and key != f"{head}.weight" for key in state)


@pytest.mark.parametrize("architecture", ["resnet18", "mobilenetv2"])
def test_embeddings_are_l2_normalised(architecture):
    torch.manual_seed(0)
    model = create_model(architecture, 16).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 40, 40))
    assert out.shape == (3, 16)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_embeddings_stay_float32_and_unit_under_bf16_autocast():
    model = create_model("resnet18", 8).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 32, 32))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


@pytest.mark.slow
def test_inceptionresnetv2_uses_timm_with_classif_head():
    model = create_model("inceptionresnetv2", 8).eval()
    assert model.state_dict()["classif.weight"].shape == (8, 1536)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 75, 75))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(1))


def test_config_rejects_an_input_too_small_for_inceptionresnetv2():
    with pytest.raises(ValueError, match="inceptionresnetv2"):
        Config(model_architecture="inceptionresnetv2", image_size=64)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="model_architecture='vgg16'"):
        create_model("vgg16", 8)


def test_pretrained_weights_from_a_local_file_fill_the_backbone(tmp_path):
    torch.manual_seed(3)
    imagenet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = create_model("resnet18", 8, pretrained=True, pretrained_path=path)
    torch.testing.assert_close(model.conv1.weight, imagenet.conv1.weight)
    torch.testing.assert_close(model.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)
    assert model.fc.weight.shape == (8, 512)


def test_pretrained_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit"):
        create_model("resnet18", 8, pretrained_path=path)


def test_pretrained_without_a_cached_file_fails_offline_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained_module.torch.hub, "get_dir", lambda: str(tmp_path))
    downloads = []
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: downloads.append(a))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "checkpoints" / "resnet18-")):
        create_model("resnet18", 8, pretrained=True)
    assert downloads == []


def test_pretrained_uses_the_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained_module.torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    imagenet = torchvision.models.resnet18(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(imagenet.state_dict(), tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
    model = create_model("resnet18", 8, pretrained=True)
    torch.testing.assert_close(model.layer1[0].conv1.weight, imagenet.layer1[0].conv1.weight)


def test_unwrap_model_removes_compile_and_ddp_wrappers():
    model = create_model("resnet18", 8)
    wrapped = torch.compile(model)
    assert unwrap_model(wrapped) is model
    assert list(unwrap_model(wrapped).state_dict())[0] == "conv1.weight"
