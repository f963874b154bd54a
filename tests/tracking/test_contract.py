"""What the training images went through, in the contract, the model card, the version's and the
run's tags, for both crop choices: MTCNN-cropped (the seed, glint360k included) and `crop: none`."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from facenet_core.config.schema import Config, DatasetConfig, EvalSet
from facenet_core.tracking.contract import build_contract, preprocessing, preprocessing_tags
from facenet_core.tracking.modelcard import model_card
from facenet_core.tracking.registry import version_tags
from facenet_core.tracking.runs import open_run
from facenet_core.tracking.uri import resolve_tracking

CHECKPOINT = {"epoch": 0, "image_size": 140, "embedding_dimension": 512}
METRICS = {"best_distance_threshold": 1.1, "threshold_at_far": 0.6, "accuracy": 0.9}
GLINT = DatasetConfig(name="glint360k", catalogue="glint360k", path="/data/glint360k")


def glint(crop: str, **fields) -> Config:
    return Config(dataset=GLINT, crop=crop, eval_sets=[EvalSet(name="lfw", root="lfw", pairs="pairs.txt")], **fields)


def tags(config: Config, contract: dict) -> dict[str, str]:
    return version_tags(contract, config.eval_sets[0], METRICS, "f" * 64, "c" * 64, "run-key")


def card(config: Config, contract: dict) -> str:
    return model_card(config, CHECKPOINT, config.eval_sets[0], METRICS, "f" * 64, contract)


def test_glint360k_cropped_as_the_seed_by_default():
    config = glint("mtcnn")
    assert Config(dataset=GLINT).crop == "mtcnn"
    contract = build_contract(config, CHECKPOINT, METRICS)
    assert {k: contract[k] for k in ("crop_method", "crop_image_size", "crop_margin", "source_alignment")} == {
        "crop_method": "mtcnn-sandberg",
        "crop_image_size": 224,
        "crop_margin": 0,
        "source_alignment": "pre-aligned",  # from the catalogue entry: insightface's 112x112 faces
    }
    assert contract["crop_done_by"] == "pipeline" and contract["input_size"] == 140
    assert tags(config, contract) == {
        "crop_method": "mtcnn-sandberg",
        "input_size": "140",
        "eval_set": "lfw",
        "accuracy": "0.9",
        "eval_set.fingerprint": "f" * 64,
        "eval_set.protocol": "kfold10",
        "facenet.checkpoint_sha256": "c" * 64,
        "facenet.run_key": "run-key",
    }
    text = card(config, contract)
    assert "| preprocessing | mtcnn-sandberg crop at 224 px, margin 0 (done by the pipeline) of pre-aligned" in text
    assert "faces must be cropped with the same detector" in text


def test_crop_none_says_no_crop_everywhere():
    config = glint("none")
    contract = build_contract(config, CHECKPOINT, METRICS)
    assert contract["crop_method"] == "none" and contract["source_alignment"] == "pre-aligned"
    assert contract["crop_image_size"] is None and contract["crop_margin"] is None and contract["crop_done_by"] is None
    assert tags(config, contract)["crop_method"] == "none"
    text = card(config, contract)
    assert "| preprocessing | no crop (pre-aligned source images used as distributed), resized to 140 px |" in text
    assert "| crop_image_size | none |" in text
    assert "5-point alignment to 112x112), not\n  MTCNN-cropped" in text
    assert "cropped with the same detector" not in text


def test_what_the_flow_did_wins_over_the_config():
    config = glint("mtcnn", dataroot="/data/glint360k-crops")
    assert preprocessing(config)["crop_done_by"] == "user"  # a cropped root given: declared, not done here
    done = preprocessing(config, aligned=False, cropped_here=True)
    contract = build_contract(config, CHECKPOINT, METRICS, done)
    assert (contract["source_alignment"], contract["crop_done_by"]) == ("unaligned", "pipeline")
    folders = Config(dataset=DatasetConfig(name="lfw", catalogue="lfw"))
    assert preprocessing(folders)["source_alignment"] == "unaligned"
    assert preprocessing(Config(dataset=DatasetConfig(name="mine", aligned=True)))["source_alignment"] == "pre-aligned"


@pytest.mark.parametrize(
    ("crop", "expected"),
    [
        ("mtcnn", {"crop_method": "mtcnn-sandberg", "crop_image_size": "160", "crop_margin": "32"}),
        ("none", {"crop_method": "none", "crop_image_size": "none", "crop_margin": "none"}),
    ],
)
def test_run_tags_say_what_was_done(crop, expected, tmp_path):
    config = glint(crop, workspace=str(tmp_path / "workspace"), crop_image_size=160, crop_margin=32)
    run_id = open_run(config, f"key-{crop}")
    tags = MlflowClient(resolve_tracking(config)[0]).get_run(run_id).data.tags
    assert {key: tags[f"facenet.preprocessing.{key}"] for key in expected} == expected
    assert tags["facenet.preprocessing.source_alignment"] == "pre-aligned"
    assert tags["facenet.preprocessing.crop_done_by"] == ("pipeline" if crop == "mtcnn" else "none")

    done = preprocessing(config, aligned=False, cropped_here=False)  # the flow passes what it did
    again = open_run(config, f"key-{crop}", tags=preprocessing_tags(done))
    tags = MlflowClient(resolve_tracking(config)[0]).get_run(again).data.tags
    assert tags["facenet.preprocessing.source_alignment"] == "unaligned"
    assert tags["facenet.preprocessing.crop_done_by"] == ("user" if crop == "mtcnn" else "none")
