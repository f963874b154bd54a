"""Dataset statistics: exact per-pixel mean/std, seeded samples, the command's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from facenet_core.config import load_config
from facenet_core.data.manifest import build_manifest
from facenet_core.data.stats import dataset_stats
from flows.cli import main as facenet


@pytest.fixture
def uneven_manifest(tmp_path):
    """Images of different sizes and modes: a per-batch average would weigh them wrongly."""
    root = tmp_path / "root"
    rng = np.random.default_rng(0)
    arrays = []
    for i, (w, h) in enumerate([(3, 2), (10, 7), (5, 5), (1, 9)]):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        (root / f"id{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / f"id{i % 2}" / f"img{i}.png")
        arrays.append(pixels.reshape(-1, 3))
    grey = np.full((4, 4), 77, dtype=np.uint8)
    Image.fromarray(grey, "L").save(root / "id1" / "grey.png")
    arrays.append(np.repeat(grey.reshape(-1, 1), 3, axis=1))
    out = tmp_path / "m.parquet"
    build_manifest(root, out, workers=1, progress=False)
    return out, np.concatenate(arrays).astype(np.float64) / 255.0


def test_exact_over_all_pixels(uneven_manifest):
    path, pixels = uneven_manifest
    stats = dataset_stats(path, workers=1, progress=False)
    assert np.allclose(stats["mean_exact"], pixels.mean(axis=0), atol=1e-12)
    assert np.allclose(stats["std_exact"], pixels.std(axis=0), atol=1e-12)
    assert stats["num_pixels"] == len(pixels) and stats["num_images"] == 5
    assert stats["normalize_mean"] == [round(v, 4) for v in pixels.mean(axis=0)]


def test_parallel_equals_serial_and_sample_is_seeded(uneven_manifest):
    path, _ = uneven_manifest
    assert (
        dataset_stats(path, workers=2, progress=False)["mean_exact"]
        == dataset_stats(path, workers=1, progress=False)["mean_exact"]
    )
    first = dataset_stats(path, sample=2, seed=3, workers=1, progress=False)
    assert first["num_images"] == 2
    assert first == dataset_stats(path, sample=2, seed=3, workers=1, progress=False)
    with pytest.raises(ValueError, match="sample"):
        dataset_stats(path, sample=0, progress=False)


def test_command_writes_a_preset_fragment(uneven_manifest, tmp_path, capsys):
    path, pixels = uneven_manifest
    assert facenet(["stats", str(path), "--workers", "1", "--no-progress"]) == 0
    fragment = yaml.safe_load((tmp_path / "m.stats.yaml").read_text())
    assert fragment["normalize_std"] == [round(v, 4) for v in pixels.std(axis=0)]
    preset = tmp_path / "preset.yaml"
    preset.write_text((tmp_path / "m.stats.yaml").read_text())
    assert load_config(preset).normalize_mean == fragment["normalize_mean"]
    assert json.loads((tmp_path / "m.stats.json").read_text())["num_images"] == 5
    assert "--normalize_mean" in capsys.readouterr().out
