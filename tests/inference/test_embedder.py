"""TorchEmbedder: a photo's embedding (detect_faces, then embed) is the evaluation path's embedding of
the crop stage's PNG of it; batches, empty input, the Embedder protocol, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facenet_core.evaluate.embed import embed_images
from facenet_core.inference.embedder import Embedder, TorchEmbedder
from facenet_core.inference.faces import detect_faces
from facenet_core.inference.model import load_model
from facenet_core.models import create_model
from facenet_core.train.checkpoints import save_checkpoint

from .conftest import project_checkpoint_state


def _random_crops(count: int, size: int = 224) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _photo_and_png_embeddings(loaded, photo_paths, photo_tree, crop_stage) -> tuple[np.ndarray, np.ndarray]:
    """TorchEmbedder's embeddings of the photos (faces detected per the contract), and the evaluation
    path's embeddings of the crop stage's PNGs of the same photos."""
    contract = loaded.contract
    photos = detect_faces(photo_paths, contract.crop_options(workers=1))
    embeddings = TorchEmbedder(loaded.model, contract, batch_size=3).embed(np.stack([p.faces[0].crop for p in photos]))
    rows, output = crop_stage
    pngs = [output / rows[path.relative_to(photo_tree).as_posix()]["output"] for path in photo_paths]
    reference = embed_images(
        loaded.model,
        pngs,
        image_size=contract.input_size,
        mean=contract.mean,
        std=contract.std,
        batch_size=4,
        device="cpu",
        progress=False,
    )
    return embeddings, reference.vectors


@pytest.mark.lfw
def test_a_photo_embeds_as_the_evaluation_embeds_its_crop_stage_png(
    photo_tree, photo_paths, crop_stage, project_checkpoint
):
    embeddings, reference = _photo_and_png_embeddings(
        load_model(project_checkpoint), photo_paths, photo_tree, crop_stage
    )
    assert embeddings.dtype == np.float32 and embeddings.shape == (4, 16)
    assert np.abs(embeddings - reference).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(embeddings[0], embeddings[2], atol=1e-3)  # the weights tell photos apart


@pytest.mark.lfw
def test_a_photo_embeds_as_the_evaluation_embeds_its_aligned_crop_stage_png(
    photo_tree, photo_paths, aligned_crop_stage, tmp_path
):
    torch.manual_seed(0)
    config = {"crop": "aligned", "crop_image_size": 224, "crop_margin": 0, "distance_metric": "euclidean"}
    state = project_checkpoint_state(create_model("resnet18", 16), config=config)
    loaded = load_model(save_checkpoint(tmp_path / "aligned.pt", state))
    assert loaded.contract.crop_method == "mtcnn-aligned-arcface"
    embeddings, reference = _photo_and_png_embeddings(loaded, photo_paths, photo_tree, aligned_crop_stage)
    assert embeddings.shape == (4, 16)
    assert np.abs(embeddings - reference).max() < 1e-5


def test_batches_empty_input_and_the_protocol(project_checkpoint):
    loaded = load_model(project_checkpoint)
    crops = _random_crops(5)
    whole = TorchEmbedder(loaded.model, loaded.contract, batch_size=5)
    assert isinstance(whole, Embedder) and whole.contract is loaded.contract
    in_pairs = TorchEmbedder(loaded.model, loaded.contract, batch_size=2).embed(crops)
    np.testing.assert_allclose(in_pairs, whole.embed(crops), atol=1e-6)
    assert whole.embed(crops[:0]).shape == (0, 16)
    with pytest.raises(ValueError, match=r"uint8 crops of shape \(N, S, S, 3\), got float32"):
        whole.embed(crops.astype(np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        TorchEmbedder(loaded.model, loaded.contract, batch_size=0)
    other = loaded.contract.model_copy(update={"embedding_dimension": 32})
    with pytest.raises(ValueError, match="the model gives 16-d embeddings, its contract says 32"):
        TorchEmbedder(loaded.model, other).embed(crops)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: embedding on a GPU needs one")
def test_embeddings_on_cuda_are_the_cpu_embeddings(project_checkpoint):
    crops = _random_crops(6)
    on_cpu = TorchEmbedder(load_model(project_checkpoint).model, load_model(project_checkpoint).contract).embed(crops)
    loaded = load_model(project_checkpoint, "cuda")
    assert next(loaded.model.parameters()).device.type == "cuda"
    on_gpu = TorchEmbedder(loaded.model, loaded.contract).embed(crops)
    assert on_gpu.dtype == np.float32
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-3)
