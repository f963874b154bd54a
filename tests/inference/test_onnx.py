"""ONNX export and the ONNX Runtime embedder: the same embeddings as PyTorch (random inputs at any
batch size, real LFW faces through the same preprocessing), the contract carried in the file, and
named errors for files that are not facenet ONNX models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from facenet_core.errors import UserError
from facenet_core.inference.embedder import Embedder, TorchEmbedder
from facenet_core.inference.model import ModelContract
from facenet_core.inference.onnx import CONTRACT_KEY, OnnxEmbedder, export_onnx
from facenet_core.models import create_model

TOLERANCE = 1e-4
LFW_FACES = 6
# (architecture, input size, embedding dimension): the small ones in every run, the seed's resnet34
# (140 px, 128-d) and inceptionresnetv2 (its smallest input) as slow tests.
ARCHITECTURES = [
    ("mobilenetv2", 64, 16),
    ("resnet18", 64, 32),
    pytest.param(("resnet34", 140, 128), marks=pytest.mark.slow),
    pytest.param(("inceptionresnetv2", 75, 16), marks=pytest.mark.slow),
]


def contract_for(input_size: int, dimension: int) -> ModelContract:
    return ModelContract(
        crop_method="mtcnn-sandberg",
        crop_image_size=224,
        crop_margin=0,
        input_size=input_size,
        mean=(0.6071, 0.4609, 0.3944),
        std=(0.2457, 0.2175, 0.2129),
        embedding_dimension=dimension,
        distance_metric="euclidean",
        threshold_best_accuracy=1.1,
        threshold_at_far=0.7,
    )


@pytest.fixture(scope="module", params=ARCHITECTURES, ids=lambda case: case[0])
def exported(request, tmp_path_factory):
    """(model in eval mode, its contract, the .onnx path), exported from a model left in training mode."""
    architecture, size, dimension = request.param
    torch.manual_seed(0)
    model = create_model(architecture, dimension).train()
    contract = contract_for(size, dimension)
    folder = tmp_path_factory.mktemp(architecture)
    path = export_onnx(model, contract, folder / "model.onnx")
    assert model.training  # the export put it back in the mode it had
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]  # no temporary left beside it
    return model.eval(), contract, path


def test_onnx_matches_pytorch_on_random_inputs_at_any_batch_size(exported):
    model, contract, path = exported
    embedder = OnnxEmbedder(path, providers=["CPUExecutionProvider"])
    [graph_input] = embedder.session.get_inputs()
    [graph_output] = embedder.session.get_outputs()
    assert (graph_input.name, graph_output.name) == ("input", "embedding")
    assert isinstance(graph_input.shape[0], str)  # the batch dimension is symbolic
    assert graph_input.shape[1:] == [3, contract.input_size, contract.input_size]
    generator = torch.Generator().manual_seed(1)
    for count in (1, 3, 17):
        batch = torch.randn(count, 3, contract.input_size, contract.input_size, generator=generator)
        with torch.inference_mode():
            expected = model(batch).numpy()
        [got] = embedder.session.run(None, {"input": batch.numpy()})
        assert got.shape == (count, contract.embedding_dimension) and got.dtype == np.float32
        assert np.abs(got - expected).max() < TOLERANCE
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_contract_read_back_equals_the_one_written(exported):
    _, contract, path = exported
    embedder = OnnxEmbedder(path)
    assert embedder.contract == contract
    assert isinstance(embedder, Embedder)
    assert "CPUExecutionProvider" in embedder.providers
    stored = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert ModelContract.model_validate_json(stored[CONTRACT_KEY]) == contract


def lfw_center_crops(lfw_dir: Path, count: int) -> np.ndarray:
    """The 224 px centre of the first `count` LFW photos (250 px): uint8 N x 224 x 224 x 3."""
    paths = sorted((lfw_dir / "lfw-deepfunneled").glob("*/*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(path).convert("RGB"))[13:237, 13:237] for path in paths])


@pytest.mark.lfw
def test_onnx_embedder_matches_torch_embedder_on_lfw_faces(exported, lfw_dir):
    model, contract, path = exported
    crops = lfw_center_crops(lfw_dir, LFW_FACES)
    assert crops.shape == (LFW_FACES, 224, 224, 3)
    onnx_embedder = OnnxEmbedder(path, batch_size=4)  # two runs: 4 + 2 faces
    expected = TorchEmbedder(model, contract).embed(crops)
    got = onnx_embedder.embed(crops)
    assert got.shape == (LFW_FACES, contract.embedding_dimension) and got.dtype == np.float32
    assert np.abs(got - expected).max() < TOLERANCE
    empty = onnx_embedder.embed(np.zeros((0, 224, 224, 3), dtype=np.uint8))
    assert empty.shape == (0, contract.embedding_dimension)


def test_a_file_that_is_not_onnx_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"PK\x03\x04 a zip file, not a protobuf")
    with pytest.raises(UserError, match=re.escape(f"{path} is not a readable ONNX model")):
        OnnxEmbedder(path)
    with pytest.raises(UserError, match=re.escape(f"{tmp_path / 'missing.onnx'} does not exist")):
        OnnxEmbedder(tmp_path / "missing.onnx")


def test_an_onnx_model_without_the_contract_is_a_user_error(tmp_path):
    """A valid ONNX model that facenet-flow did not export: no contract in its metadata."""
    identity = onnx.helper.make_node("Identity", ["input"], ["embedding"])
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [identity],
        "foreign",
        [tensor("input", onnx.TensorProto.FLOAT, ["n", 4])],
        [tensor("embedding", onnx.TensorProto.FLOAT, ["n", 4])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(UserError, match=re.escape(f"ONNX model {path} was not exported by facenet-flow")):
        OnnxEmbedder(path)


def test_unavailable_providers_are_a_user_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"unread")
    with pytest.raises(UserError, match=r"\['NoSuchExecutionProvider'\] are not available here: choose from"):
        OnnxEmbedder(path, providers=["NoSuchExecutionProvider", "CPUExecutionProvider"])


def test_export_refuses_a_contract_of_another_embedding_size_and_writes_nothing(tmp_path):
    model = create_model("mobilenetv2", 16)
    with pytest.raises(ValueError, match=r"embeddings of shape \(16,\) for 32 px input, the contract says \(8,\)"):
        export_onnx(model, contract_for(32, 8), tmp_path / "model.onnx")
    with pytest.raises(UserError, match="opset 13 is too old"):
        export_onnx(model, contract_for(32, 16), tmp_path / "model.onnx", opset=13)
    assert list(tmp_path.iterdir()) == []
