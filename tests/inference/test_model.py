"""Models from anywhere: the typed contract (from build_contract's dict, thresholds by name, crop
options), a project checkpoint, a seed checkpoint with the seed's 140-px preprocessing, a registered
MLflow model, and the sources that are none of these."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from facenet_core.config.schema import Config
from facenet_core.errors import UserError
from facenet_core.inference.embedder import TorchEmbedder
from facenet_core.inference.model import ModelContract, load_model
from facenet_core.models import create_model
from facenet_core.tracking.contract import ALIGNED_CROP_METHOD, build_contract, preprocessing
from facenet_core.tracking.pyfunc import read_contract
from facenet_core.tracking.registry import register_best
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.uri import resolve_tracking
from facenet_core.train.checkpoints import save_checkpoint
from tests.tracking.conftest import _isolated_mlflow  # noqa: F401  (the fixture, for the MLflow test)
from tests.train.seed_style import save_seed_checkpoint

from .conftest import PROJECT_MEAN, PROJECT_STD, REGISTERED_METRICS, project_checkpoint_state, registry_config

RECORD = {
    "crop_method": "mtcnn-sandberg",
    "crop_image_size": 160,
    "crop_margin": 32,
    "source_alignment": "unaligned",
    "crop_done_by": "pipeline",
}


def _crops(count: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, 224, 224, 3), dtype=np.uint8)


def _contract(**changes) -> ModelContract:
    checkpoint = {"image_size": 96, "normalize_mean": PROJECT_MEAN, "normalize_std": PROJECT_STD}
    values = build_contract(
        Config(embedding_dimension=32, distance_metric="cosine"),
        checkpoint,
        {"best_distance_threshold": 0.42, "threshold_at_far": 0.3},
        RECORD,
    )
    return ModelContract.from_dict({**values, **changes}, "test")


def test_the_contract_dict_of_a_registered_model_as_a_typed_contract():
    contract = _contract()
    assert (contract.crop_method, contract.crop_image_size, contract.crop_margin) == ("mtcnn-sandberg", 160, 32)
    assert (contract.input_size, contract.mean, contract.std) == (96, tuple(PROJECT_MEAN), tuple(PROJECT_STD))
    assert (contract.embedding_dimension, contract.distance_metric) == (32, "cosine")
    assert (contract.threshold_best_accuracy, contract.threshold_at_far, contract.far_target) == (0.42, 0.3, 1e-3)
    options = contract.crop_options(device="cpu", batch_size=4)
    assert (options.image_size, options.margin, options.batch_size) == (160, 32, 4)
    with pytest.raises(UserError, match=r"model contract of models:/facenet/1 is invalid \(std\.1: "):
        ModelContract.from_dict(
            {**build_contract(Config(), {}, {"best_distance_threshold": 1.0}, RECORD), "std": [1, 0, 1]},
            "models:/facenet/1",
        )
    with pytest.raises(UserError, match="cropped outside the pipeline"):
        _contract(crop_method="none", crop_image_size=None, crop_margin=None).crop_options()


def test_an_aligned_contract_crops_photos_by_alignment_without_a_margin(tmp_path):
    aligned = Config(crop="aligned", crop_image_size=112)
    record = preprocessing(aligned)
    assert {key: record[key] for key in ("crop_method", "crop_image_size", "crop_margin")} == {
        "crop_method": ALIGNED_CROP_METHOD,
        "crop_image_size": 112,
        "crop_margin": None,
    }
    contract = ModelContract.from_dict(build_contract(aligned, {}, {"best_distance_threshold": 1.0}, record), "test")
    assert contract.crop_method == "mtcnn-aligned-arcface"
    options = contract.crop_options(device="cpu", batch_size=4)
    assert (options.method, options.image_size, options.margin, options.batch_size) == ("aligned", 112, 0, 4)
    assert options.folder_name("lfw") == "lfw-aligned-image_size112"
    assert _contract().crop_options().method == "mtcnn"
    with pytest.raises(UserError, match="cropped outside the pipeline"):
        _contract(crop_method="mtcnn-sandberg", crop_margin=None).crop_options()
    # a checkpoint whose config says crop: aligned
    config = {"crop": "aligned", "crop_image_size": 160, "crop_margin": 0}
    state = project_checkpoint_state(create_model("resnet18", 16), config=config)
    contract = load_model(save_checkpoint(tmp_path / "aligned.pt", state)).contract
    assert (contract.crop_method, contract.crop_image_size, contract.crop_margin) == (ALIGNED_CROP_METHOD, 160, None)
    assert contract.crop_options().method == "aligned"


def test_thresholds_by_name_with_where_they_come_from():
    contract = _contract()
    assert contract.threshold("best") == (0.42, "best-accuracy threshold of the model's evaluation")
    assert contract.threshold("far1e-3") == (0.3, "threshold at FAR 0.001 of the model's evaluation")
    assert contract.threshold("far0.001") == contract.threshold("far1e-3")
    assert contract.threshold(" 1.1 ") == (1.1, "given")
    with pytest.raises(UserError, match="records a threshold for far0.001 only"):
        contract.threshold("far1e-2")
    with pytest.raises(UserError, match="records no threshold at FAR 0.001"):
        _contract(threshold_at_far=None).threshold("far1e-3")
    with pytest.raises(UserError, match="records no best-accuracy threshold"):
        _contract(threshold_best_accuracy=None).threshold("best")
    for spec in ("median", "-1", "nan", "inf", ""):
        with pytest.raises(UserError, match="is not a threshold: give best, far0.001 or a distance >= 0"):
            contract.threshold(spec)


def test_a_project_checkpoint_brings_the_preprocessing_it_records(project_checkpoint):
    loaded = load_model(project_checkpoint)
    assert (loaded.kind, loaded.source) == ("checkpoint", str(project_checkpoint))
    assert not loaded.model.training
    contract = loaded.contract
    assert (contract.input_size, contract.mean, contract.std) == (64, tuple(PROJECT_MEAN), tuple(PROJECT_STD))
    assert (contract.crop_method, contract.crop_image_size, contract.crop_margin) == ("mtcnn-sandberg", 224, 0)
    assert (contract.embedding_dimension, contract.distance_metric) == (16, "euclidean")
    assert contract.threshold("best")[0] == 1.05 and contract.threshold_at_far is None


def test_a_checkpoint_records_its_crop_and_maybe_no_threshold_yet(tmp_path):
    config = {"crop": "mtcnn", "crop_image_size": 160, "crop_margin": 32, "distance_metric": "cosine"}
    state = project_checkpoint_state(create_model("resnet18", 16), best_distance_threshold=None, config=config)
    contract = load_model(save_checkpoint(tmp_path / "epoch_1.pt", state)).contract
    assert (contract.crop_image_size, contract.crop_margin, contract.distance_metric) == (160, 32, "cosine")
    with pytest.raises(UserError, match="records no best-accuracy threshold"):
        contract.threshold("best")
    state["config"] = {"crop": "none"}
    contract = load_model(save_checkpoint(tmp_path / "user_crops.pt", state)).contract
    assert (contract.crop_method, contract.crop_image_size) == ("none", None)
    del state["config"]  # an early checkpoint without its config: the crop stage's defaults
    contract = load_model(save_checkpoint(tmp_path / "bare.pt", state)).contract
    assert (contract.crop_image_size, contract.crop_margin, contract.distance_metric) == (224, 0, "euclidean")


def test_a_seed_checkpoint_embeds_with_the_seeds_140_pixel_preprocessing(tmp_path):
    net, _ = save_seed_checkpoint(tmp_path / "model_resnet34_triplet.pt", "resnet18", embedding_dimension=16)
    loaded = load_model(tmp_path / "model_resnet34_triplet.pt")
    contract = loaded.contract
    assert loaded.kind == "seed checkpoint"
    assert (contract.crop_method, contract.crop_image_size, contract.crop_margin) == ("mtcnn-sandberg", 224, 0)
    assert (contract.input_size, contract.mean, contract.std) == (
        140,
        (0.6071, 0.4609, 0.3944),
        (0.2457, 0.2175, 0.2129),
    )
    assert contract.threshold("best") == (1.25, "best-accuracy threshold of the model's evaluation")

    crops = _crops(3)
    seed_transform = T.Compose(
        [T.Resize((140, 140)), T.ToTensor(), T.Normalize([0.6071, 0.4609, 0.3944], [0.2457, 0.2175, 0.2129])]
    )
    with torch.inference_mode():
        expected = net.eval()(torch.stack([seed_transform(Image.fromarray(crop)) for crop in crops])).numpy()
    embeddings = TorchEmbedder(loaded.model, contract).embed(crops)
    assert np.abs(embeddings - expected).max() < 1e-5


def test_sources_that_are_no_model_are_named(tmp_path):
    with pytest.raises(UserError, match="is neither a file, a folder nor an MLflow model URI"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a PyTorch checkpoint"):
        load_model(tmp_path / "notes.pt")
    with pytest.raises(UserError, match="has no facenet_contract.json: not a facenet model"):
        load_model(tmp_path)
    with pytest.raises(UserError, match="device='cuda:x' is not a device"):
        load_model(tmp_path / "notes.pt", "cuda:x")


@pytest.mark.slow
def test_a_registered_model_loads_by_alias_with_its_contract(tmp_path, project_checkpoint):
    config = registry_config(tmp_path)
    metrics = REGISTERED_METRICS
    run_id = open_run(config, "run-a")
    registered = register_best(config, run_id, project_checkpoint, metrics, "a" * 64)
    uri = resolve_tracking(config)[0]
    import mlflow

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # the process-wide store is another one:
    mlflow.set_tracking_uri(elsewhere)  # the model must come from `tracking_uri`'s registry
    mlflow.set_registry_uri(elsewhere)

    loaded = load_model("models:/facenet@champion", tracking_uri=uri)
    assert (loaded.kind, loaded.source) == ("mlflow", "models:/facenet@champion")
    assert loaded.contract.threshold("far1e-3")[0] == 0.7
    assert loaded.contract.input_size == 64 and loaded.contract.mean == tuple(PROJECT_MEAN)
    assert load_model(registered["model_uri"], tracking_uri=uri).contract == loaded.contract
    assert load_model(f"runs:/{run_id}/model", tracking_uri=uri).contract == loaded.contract

    from_checkpoint = load_model(project_checkpoint)
    crops = _crops(2)
    np.testing.assert_array_equal(
        TorchEmbedder(loaded.model, loaded.contract).embed(crops),
        TorchEmbedder(from_checkpoint.model, from_checkpoint.contract).embed(crops),
    )
    with pytest.raises(UserError, match="model models:/facenet@nobody cannot be fetched from"):
        load_model("models:/facenet@nobody", tracking_uri=uri)

    mlflow.set_registry_uri(uri)  # MLflow's own download reads the process-wide registry
    folder = mlflow.artifacts.download_artifacts(
        registered["model_uri"], dst_path=str(tmp_path / "m"), tracking_uri=uri
    )
    assert ModelContract.from_dict(read_contract(folder), folder) == load_model(folder).contract
