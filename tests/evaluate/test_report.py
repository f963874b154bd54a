"""evaluate_model end to end on a tiny tree, and the per-epoch report files."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facenet_core.config.schema import EvalSet
from facenet_core.evaluate.metrics import ROC_THRESHOLDS
from facenet_core.evaluate.pairs import read_pairs, resolve_pairs
from facenet_core.evaluate.plots import plot_distances
from facenet_core.evaluate.report import (
    EvalResult,
    distance_thresholds,
    evaluate_model,
    format_log_line,
    read_metrics_table,
    write_epoch_report,
)
from facenet_core.evaluate.selection import comparable_history

KWARGS = {"image_size": 12, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.2], "batch_size": 5, "device": "cpu"}
METRIC_KEYS = {
    "accuracy",
    "accuracy_std",
    "precision",
    "recall",
    "roc_auc",
    "tar_at_far",
    "far",
    "best_distance_threshold",
    "threshold_std",
    "num_pairs",
    "missing_pairs",
}


def test_kfold10_each_image_once_and_perfect_on_colours(face_tree, colour_net, view2_file):
    pairs_file = view2_file
    unique = len(resolve_pairs(read_pairs(pairs_file), face_tree).images)
    eval_set = EvalSet(name="lfw", root=str(face_tree), pairs=str(pairs_file), protocol="kfold10")
    result = evaluate_model(colour_net, eval_set, **KWARGS)
    assert sum(colour_net.batches) == unique < 40
    assert max(colour_net.batches) <= 5
    assert METRIC_KEYS <= set(result.metrics)
    assert result.metrics["accuracy"] == 1.0 and result.metrics["accuracy_std"] == 0.0
    assert result.metrics["roc_auc"] == pytest.approx(1.0)
    assert result.metrics["num_pairs"] == 20 and result.metrics["missing_pairs"] == 0
    assert result.fpr.shape == result.tpr.shape == ROC_THRESHOLDS.shape
    assert len(result.folds["accuracy"]) == 10
    assert result.distances.shape == result.issame.shape == (20,)
    assert result.issame.sum() == 10  # View 2 blocks: same pairs then different pairs
    assert result.distances[result.issame].max() < result.distances[~result.issame].min()


def test_missing_and_unreadable_images_are_left_out_and_counted(face_tree, colour_net, view2_file):
    pairs = read_pairs(view2_file)
    sides = [
        ((a, x), (b, y))
        for a, x, b, y in zip(pairs.name1, pairs.num1.tolist(), pairs.name2, pairs.num2.tolist(), strict=True)
    ]
    gone, broken = ("Ann", 2), ("Bob", 3)
    hit = [gone in pair or broken in pair for pair in sides]
    assert any(gone in pair for pair in sides) and any(broken in pair for pair in sides)
    next(face_tree.glob("Ann/Ann_0002.*")).unlink()
    next(face_tree.glob("Bob/Bob_0003.*")).write_bytes(b"garbage")
    result = evaluate_model(colour_net, EvalSet(name="lfw", root=str(face_tree), pairs=str(view2_file)), **KWARGS)
    assert result.metrics["missing_pairs"] == sum(hit) > 1
    assert result.metrics["num_pairs"] == 20 - sum(hit)
    assert result.missing_images == ["Ann/Ann_0002", "Bob/Bob_0003"]


def test_train_test_protocol_with_people_filter(face_tree, colour_net, tmp_path):
    train = tmp_path / "pairsDevTrain.txt"
    train.write_text("2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nCid\t1\tDan\t1\n")
    test = tmp_path / "pairsDevTest.txt"
    test.write_text("3\nEve\t1\t2\nFay\t1\t3\nCid\t2\t3\nEve\t1\tFay\t2\nCid\t1\tEve\t3\nDan\t2\tFay\t1\n")
    people = tmp_path / "peopleDevTest.txt"
    people.write_text("2\nEve\t3\nFay\t3\n")
    eval_set = EvalSet(
        name="view1", root=str(face_tree), pairs=str(test), protocol="train_test", train_pairs=str(train)
    )
    result = evaluate_model(colour_net, eval_set, **KWARGS)
    assert result.metrics["num_pairs"] == 6 and result.metrics["num_folds"] == 1
    assert result.metrics["num_same_pairs"] == 3
    assert result.metrics["missing_pairs"] == 0 and result.metrics["missing_train_pairs"] == 0
    assert result.metrics["accuracy"] == 1.0
    filtered = evaluate_model(colour_net, eval_set.model_copy(update={"people_file": str(people)}), **KWARGS)
    assert filtered.metrics["num_pairs"] == 3  # Eve/Fay pairs only; the training pairs are not filtered
    assert filtered.metrics["num_same_pairs"] == 2
    assert filtered.issame.tolist() == [True, True, False]  # the reported (test) pairs, not the threshold pairs


def make_result(accuracy: float) -> EvalResult:
    metrics = {
        "accuracy": accuracy,
        "accuracy_std": 0.01,
        "precision": 0.9,
        "precision_std": 0.02,
        "recall": 0.8,
        "recall_std": 0.03,
        "roc_auc": 0.95,
        "tar_at_far": 0.5,
        "tar_at_far_std": 0.1,
        "far": 0.001,
        "far_std": 0.0005,
        "best_distance_threshold": 1.1,
        "threshold_std": 0.05,
        "num_pairs": 6000,
        "missing_pairs": 0,
    }
    grid = np.linspace(0, 1, 400)
    distances = np.array([0.2, 0.4, 0.5, 0.8, 1.3, 1.5, 1.6])
    issame = np.array([True, True, True, True, False, False, False])
    return EvalResult(metrics=metrics, fpr=grid, tpr=np.sqrt(grid), distances=distances, issame=issame)


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size[0] > 100 and image.size[1] > 100


def test_epoch_reports_table_and_plots(tmp_path, caplog):
    reports = tmp_path / "reports"
    with caplog.at_level(logging.INFO, logger="facenet_core.evaluate.report"):
        paths = write_epoch_report(reports, 0, "lfw", make_result(0.70))
    assert paths.metrics == reports / "metrics.parquet"
    assert paths.roc == reports / "roc_lfw_epoch_0.png"
    assert paths.accuracy == reports / "accuracy_lfw.png"
    assert paths.distances == reports / "distances_lfw_epoch_0.png"
    for png in (paths.roc, paths.accuracy, paths.distances):
        assert_png(png)
    assert "Epoch 0 lfw: Accuracy 0.7000+-0.0100" in caplog.text
    write_epoch_report(reports, 1, "lfw", make_result(0.80))
    write_epoch_report(reports, 0, "view1", make_result(0.60))
    write_epoch_report(reports, 1, "lfw", make_result(0.85))  # re-evaluation replaces the row
    table = pd.read_parquet(reports / "metrics.parquet")
    assert table[["set", "epoch"]].values.tolist() == [["lfw", 0], ["lfw", 1], ["view1", 0]]
    assert table["accuracy"].tolist() == [0.70, 0.85, 0.60]
    assert table["num_pairs"].tolist() == [6000, 6000, 6000]
    assert sorted(p.name for p in reports.iterdir()) == [
        "accuracy_lfw.png",
        "accuracy_view1.png",
        "distances_lfw_epoch_0.png",
        "distances_lfw_epoch_1.png",
        "distances_view1_epoch_0.png",
        "metrics.parquet",
        "roc_lfw_epoch_0.png",
        "roc_lfw_epoch_1.png",
        "roc_view1_epoch_0.png",
    ]


def test_log_line_in_the_seeds_order():
    line = format_log_line(3, "lfw", make_result(0.9845).metrics)
    assert line == (
        "Epoch 3 lfw: Accuracy 0.9845+-0.0100\tPrecision 0.9000+-0.0200\tRecall 0.8000+-0.0300\t"
        "ROC Area Under Curve: 0.9500\tBest distance threshold: 1.10+-0.05\tTAR: 0.5000+-0.1000 @ FAR: 0.0010"
    )


def test_bad_settings_fail_before_embedding(face_tree, colour_net, view2_file):
    eval_set = EvalSet(name="lfw", root=str(face_tree), pairs=str(view2_file))
    with pytest.raises(ValueError, match="distance_metric"):
        evaluate_model(colour_net, eval_set, distance_metric="manhattan", **KWARGS)
    with pytest.raises(ValueError, match="'root'"):
        evaluate_model(colour_net, eval_set.model_copy(update={"root": ""}), **KWARGS)
    assert colour_net.batches == []


def test_diverged_model_is_an_error_not_missing_images(face_tree, view2_file):
    class NaNNet(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 4), float("nan"))

    with pytest.raises(ValueError, match="not finite"):
        evaluate_model(NaNNet(), EvalSet(name="lfw", root=str(face_tree), pairs=str(view2_file)), **KWARGS)


def test_rows_of_other_settings_stay_but_are_not_compared(tmp_path):
    reports = tmp_path / "reports"
    write_epoch_report(reports, 0, "lfw", make_result(0.90), settings="plain")
    write_epoch_report(reports, 1, "lfw", make_result(0.80), settings="plain")
    write_epoch_report(reports, 1, "lfw", make_result(0.85), settings="flipped")  # epoch 1 evaluated again
    table = read_metrics_table(reports)
    assert table[["epoch", "settings"]].values.tolist() == [[0, "plain"], [1, "flipped"]]
    assert comparable_history(table, "lfw", "flipped")["epoch"].tolist() == [1]
    assert comparable_history(table, "lfw", "plain")["accuracy"].tolist() == [0.90]
    legacy = table.drop(columns="settings")  # a table written before the column existed
    legacy.to_parquet(reports / "metrics.parquet", index=False)
    assert read_metrics_table(reports)["settings"].tolist() == ["", ""]


def test_distance_histogram_counts_each_class_and_marks_both_thresholds(tmp_path):
    result = make_result(0.9)
    marked = distance_thresholds({**result.metrics, "threshold_at_far": 0.3})
    assert marked == {"best-accuracy threshold": 1.1, "threshold at FAR=0.001": 0.3}
    drawn = plot_distances(tmp_path / "d.png", result.distances, result.issame, marked, "lfw", bins=4)
    assert_png(drawn.path)
    assert drawn.thresholds == marked
    np.testing.assert_allclose(drawn.edges, [0.2, 0.55, 0.9, 1.25, 1.6])  # data and thresholds spanned
    assert drawn.same_counts.tolist() == [3, 1, 0, 0]
    assert drawn.different_counts.tolist() == [0, 0, 0, 3]
    # A threshold beyond every distance widens the bins so that its line is on the plot.
    wide = plot_distances(tmp_path / "w.png", result.distances, result.issame, {"t": 3.0}, "lfw", bins=4)
    assert wide.edges[-1] == 3.0 and wide.same_counts.sum() == 4 and wide.different_counts.sum() == 3
    assert distance_thresholds({"best_distance_threshold": 0.7}) == {"best-accuracy threshold": 0.7}
