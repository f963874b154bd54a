"""The LFW View 1 presets keep the test people out of training.

Training is restricted to peopleDevTrain.txt; the headline figure is measured on pairsDevTest.txt,
whose people (peopleDevTest.txt) must never appear in the training manifest.
"""

from pathlib import Path

import pytest

from facenet_core.config import load_config
from facenet_core.data.manifest import build_manifest, read_identities_file, read_manifest
from facenet_core.evaluate.pairs import read_pairs, read_people

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS = [
    "deployments/lfw_view1.yaml",
    "deployments/lfw_view1_gpu.yaml",
    "deployments/lfw_view1_mined.yaml",
    "deployments/lfw_view1_gpu_mined.yaml",
]
LFW = REPO_ROOT.parent / "shared" / "data" / "lfw"
# Settings in the crop cache key: equal, so both presets share one set of crops in the workspace.
CROP_FIELDS = [
    "crop_image_size",
    "crop_margin",
    "crop_batch_size",
    "crop_shard_size",
    "crop_png_compress_level",
    "exif_transpose",
    "device",
]


def _resolved(value: str | None) -> Path | None:
    """A preset path (relative to the repository root) as an absolute path."""
    return None if value is None else (REPO_ROOT / value).resolve()


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_on_devtrain_and_evaluates_on_devtest(preset: str) -> None:
    cfg = load_config(REPO_ROOT / preset)
    assert cfg.dataset.name == "lfw"
    assert _resolved(cfg.dataset.path) == LFW.resolve() / "lfw-deepfunneled"
    assert _resolved(cfg.identities_file) == LFW.resolve() / "peopleDevTrain.txt"
    sets = {s.name: s for s in cfg.eval_sets}
    assert list(sets) == ["lfw-view1", "lfw-view2-devtest-people"]
    assert cfg.selection_eval_set == "lfw-view1"

    view1 = sets["lfw-view1"]
    assert view1.protocol == "train_test"
    assert _resolved(view1.pairs) == LFW.resolve() / "pairsDevTest.txt"
    assert _resolved(view1.train_pairs) == LFW.resolve() / "pairsDevTrain.txt"
    assert view1.people_file is None

    view2 = sets["lfw-view2-devtest-people"]
    assert view2.protocol == "kfold10"
    assert _resolved(view2.pairs) == LFW.resolve() / "pairs.txt"
    assert _resolved(view2.people_file) == LFW.resolve() / "peopleDevTest.txt"
    for eval_set in (view1, view2):
        assert _resolved(eval_set.root) == LFW.resolve() / "lfw-deepfunneled"


def test_presets_share_data_crops_and_evaluation() -> None:
    cpu, *others = (load_config(REPO_ROOT / preset) for preset in PRESETS)
    for other in others:
        assert other.dataset == cpu.dataset
        assert other.identities_file == cpu.identities_file
        assert other.eval_sets == cpu.eval_sets
        assert other.workspace == cpu.workspace
        for field in CROP_FIELDS:
            assert getattr(other, field) == getattr(cpu, field), field


@pytest.mark.lfw
def test_training_manifest_holds_only_devtrain_people(lfw_dir: Path, tmp_path: Path) -> None:
    summary = build_manifest(
        lfw_dir / "lfw-deepfunneled",
        tmp_path / "lfw-devtrain.parquet",
        identities_file=lfw_dir / "peopleDevTrain.txt",
        validate=False,
        progress=False,
    )
    manifest = read_manifest(summary["manifest"])
    identities = set(manifest.identities)
    train_people = set(read_identities_file(lfw_dir / "peopleDevTrain.txt"))
    test_people = read_people(lfw_dir / "peopleDevTest.txt")

    assert len(train_people) == 4038 and len(test_people) == 1711
    assert not train_people & test_people
    assert identities == train_people
    assert summary["missing_identities"] == []
    assert not identities & test_people

    paths = {manifest.path(i) for i in range(manifest.num_images)}
    assert len(paths) == manifest.num_images == summary["num_images"]
    assert all(path.split("/", 1)[0] in train_people for path in paths)

    pairs = read_pairs(lfw_dir / "pairsDevTest.txt")
    sides = zip(pairs.name1 + pairs.name2, list(pairs.num1) + list(pairs.num2), strict=True)
    test_images = {f"{name}/{name}_{int(num):04d}.jpg" for name, num in sides}
    assert len(test_images) > 1000
    assert all((lfw_dir / "lfw-deepfunneled" / image).is_file() for image in test_images)
    assert not test_images & paths
