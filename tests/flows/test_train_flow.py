"""facenet-train end to end: results, cache hits on rerun, resume after a failure, targeted reruns."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from facenet_core.detect import parallel
from facenet_core.evaluate import report as report_core
from facenet_core.evaluate.report import read_metrics_table
from facenet_core.train.checkpoints import load_checkpoint
from flows.train import run_in_process
from tasks import crop as crop_tasks

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


@pytest.fixture
def count_calls(monkeypatch):
    """Count how often the expensive core functions actually run."""
    calls = {"crop_shard": 0, "evaluate": 0}

    def counting(name, original):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(crop_tasks.parallel, "run_shard", counting("crop_shard", parallel.run_shard))
    monkeypatch.setattr(report_core, "evaluate_model", counting("evaluate", report_core.evaluate_model))
    return calls


def test_full_run_then_everything_cached(tiny_preset, count_calls):
    first = run_in_process(tiny_preset)
    run_dir = Path(first["run_dir"])
    assert [e["epoch"] for e in first["evaluations"]] == [0, 1]
    for evaluation in first["evaluations"]:
        assert 0.0 <= evaluation["metrics"]["accuracy"] <= 1.0
        assert evaluation["metrics"]["num_pairs"] == 40
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "epoch_1.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["model_architecture"] == "resnet18"
    assert all(torch.isfinite(v).all() for v in checkpoint["model_state_dict"].values() if v.is_floating_point())
    assert (run_dir / "triplets" / "epoch_1.npy").is_file() and (run_dir / "config.yaml").is_file()
    assert (run_dir / "reports" / "roc_tiny-eval_epoch_1.png").is_file()
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    best_eval = max(first["evaluations"], key=lambda e: (e["metrics"]["accuracy"], -e["epoch"]))
    assert best["epoch"] == best_eval["epoch"] == first["registered"]["epoch"]
    assert best["best_distance_threshold"] == best_eval["metrics"]["best_distance_threshold"]
    assert first["registered"]["name"] == "facenet" and first["registered"]["alias"] == "champion"
    assert first["stage_states"].get("Cached", 0) == 0
    crops_before = count_calls["crop_shard"]

    second = run_in_process(tiny_preset)
    assert second["run_key"] == first["run_key"]
    assert set(second["stage_states"]) == {"Cached", "Completed"}
    assert second["stage_states"]["Completed"] == 2  # tracking run reopened, registration re-checked
    assert count_calls["crop_shard"] == crops_before and count_calls["evaluate"] == 2
    assert second["registered"]["version"] == first["registered"]["version"]


def test_failed_evaluation_resumes_without_recomputing(tiny_preset, monkeypatch, count_calls):
    original = report_core.evaluate_model
    seen = []

    def fail_on_second(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise RuntimeError("evaluation of epoch 1 interrupted")
        return original(*args, **kwargs)

    monkeypatch.setattr(report_core, "evaluate_model", fail_on_second)
    with pytest.raises(RuntimeError, match="epoch 1 interrupted"):
        run_in_process(tiny_preset)
    checkpoint_1 = next(Path(tiny_preset.parent, "workspace", "runs").glob("*/checkpoints/epoch_1.pt"))
    mtime = checkpoint_1.stat().st_mtime_ns

    monkeypatch.setattr(report_core, "evaluate_model", original)
    crops_before = count_calls["crop_shard"]
    rerun = run_in_process(tiny_preset)
    assert rerun["stage_states"]["Completed"] == 3  # tracking, evaluate epoch 1, register
    assert count_calls["crop_shard"] == crops_before
    assert checkpoint_1.stat().st_mtime_ns == mtime


def test_eval_parameter_reruns_only_evaluation_and_margin_only_training(tiny_preset, count_calls):
    run_in_process(tiny_preset)
    crops = count_calls["crop_shard"]
    flipped = run_in_process(tiny_preset, {"flip_tta": True})
    assert flipped["stage_states"]["Completed"] == 2 + 2  # two evaluations rerun
    wider = run_in_process(tiny_preset, {"margin": 0.3})
    assert wider["run_key"] != flipped["run_key"]
    assert wider["stage_states"]["Completed"] == 2 + 2 + 2  # two epochs trained, two evaluations
    assert count_calls["crop_shard"] == crops


def test_touched_image_recrops_only_its_shard(tiny_preset, count_calls):
    run_in_process(tiny_preset)
    shards_total = count_calls["crop_shard"]
    raw = next(Path(tiny_preset.parent, "workspace", "raw", "tiny", "train").glob("*/*.jpg"))
    raw.write_bytes(raw.read_bytes())  # same content, new mtime: the shard's fingerprint changes
    rerun = run_in_process(tiny_preset)
    assert count_calls["crop_shard"] == shards_total + 1
    assert rerun["stage_states"].get("Completed", 0) == 2


def test_crop_speed_options_hit_the_cache_and_other_crops_land_beside(tiny_preset, count_calls):
    first = run_in_process(tiny_preset)
    shards = count_calls["crop_shard"]
    workspace = tiny_preset.parent / "workspace"
    default_crops = {p: p.stat().st_mtime_ns for p in (workspace / "cropped" / "tiny").rglob("*.png")}
    assert default_crops

    faster = run_in_process(tiny_preset, {"crop_batch_size": 2, "crop_png_compress_level": 6, "crop_workers": 2})
    assert count_calls["crop_shard"] == shards
    assert faster["run_key"] == first["run_key"] and faster["stage_states"]["Completed"] == 2

    larger = run_in_process(tiny_preset, {"crop_image_size": 48})
    assert count_calls["crop_shard"] == 2 * shards  # training and evaluation shards, all cropped anew
    assert larger["run_key"] != first["run_key"]
    new_crops = sorted((workspace / "cropped" / "tiny-image_size48").rglob("*.png"))
    assert len(new_crops) == len(default_crops)
    assert {Image.open(p).size for p in new_crops} == {(48, 48)}
    assert any((workspace / "cropped" / "eval-tiny-eval-image_size48").rglob("*.png"))
    assert {p: p.stat().st_mtime_ns for p in (workspace / "cropped" / "tiny").rglob("*.png")} == default_crops
    manifests = {p.name for p in (workspace / "manifests").glob("*.parquet") if ".rejects" not in p.name}
    assert manifests == {"tiny.parquet", "tiny-image_size48.parquet"}
    # Same people, same counts: byte-identical triplets, but other images behind them, so trained anew
    # into the new run's folder (not the first run's weights taken from the cache).
    runs = workspace / "runs"
    for epoch in range(2):
        first_rows, larger_rows = (
            runs / key / "triplets" / f"epoch_{epoch}.npy" for key in (first["run_key"], larger["run_key"])
        )
        assert first_rows.read_bytes() == larger_rows.read_bytes()
        weights = [
            torch.load(runs / key / "checkpoints" / f"epoch_{epoch}.pt", weights_only=True)["model_state_dict"]
            for key in (first["run_key"], larger["run_key"])
        ]
        assert not all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_epochs_pruned_by_retention_are_skipped_when_evaluation_changes(tiny_preset, count_calls):
    retention = {"checkpoint_retention": 1, "epochs": 3}
    first = run_in_process(tiny_preset, retention)
    checkpoints = Path(first["run_dir"]) / "checkpoints"
    kept = sorted(int(p.stem.split("_")[1]) for p in checkpoints.glob("epoch_*.pt"))
    [pruned] = sorted({0, 1, 2} - set(kept))
    best = load_checkpoint(checkpoints / "best.pt")["epoch"]
    assert 2 in kept and best in kept and first["registered"]["epoch"] == best  # newest and best kept
    assert [e["epoch"] for e in first["evaluations"]] == [0, 1, 2] and first["skipped_evaluations"] == []
    evaluated = count_calls["evaluate"]

    flipped = run_in_process(tiny_preset, {**retention, "flip_tta": True})
    assert flipped["run_key"] == first["run_key"]
    assert count_calls["evaluate"] == evaluated + 2  # the pruned epoch's weights are gone
    assert [e["epoch"] for e in flipped["evaluations"]] == kept
    [skipped] = flipped["skipped_evaluations"]
    assert skipped["epoch"] == pruned and skipped["eval_set"] == "tiny-eval"
    assert "checkpoint_retention" in skipped["skipped"] and f"epoch_{pruned}.pt" in skipped["skipped"]
    assert load_checkpoint(checkpoints / "best.pt")["epoch"] == flipped["registered"]["epoch"]
    table = read_metrics_table(Path(first["run_dir"]) / "reports")
    assert table["settings"].nunique() == 2 and table["epoch"].tolist() == [0, 1, 2]

    again = run_in_process(tiny_preset, retention)  # back to the first settings
    assert count_calls["evaluate"] == evaluated + 4  # the kept epochs' reports were overwritten: evaluated again
    assert [e["epoch"] for e in again["evaluations"]] == [0, 1, 2]  # the pruned one's first result is Cached
    assert again["registered"]["epoch"] == first["registered"]["epoch"]
    assert load_checkpoint(checkpoints / "best.pt")["epoch"] == first["registered"]["epoch"]
