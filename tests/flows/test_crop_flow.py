"""The facenet-crop flow: one tree cropped into two folders of one workspace gets two sets of crops; a
deleted crop is made again; regrouped shards and a deleted identity folder crop nothing again."""

import shutil

import pandas as pd
import pytest

from facenet_core.detect.shards import shard_id
from facenet_core.synthetic.demo import generate_identities
from flows.crop import crop_dataset

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_same_tree_into_two_output_folders_crops_both(tmp_path):
    raw = generate_identities(tmp_path / "raw", num_identities=2, images_per_identity=3, seed=5)
    workspace, options = str(tmp_path / "ws"), {"device": "cpu", "workers": 1, "image_size": 48}
    tables = {}
    for name in ("train", "eval"):
        out = tmp_path / "ws" / "cropped" / name
        result = crop_dataset(workspace, str(raw), str(out), options, shard_size=1)
        tables[name] = pd.read_parquet(result.path)
        assert result.path == out / "detections.parquet"
        assert len(list((out / ".shards").glob("*.parquet"))) == 2
        assert all((out / o).is_file() for o in tables[name].loc[tables[name]["status"] == "ok", "output"])
    assert len(tables["eval"]) == 6 and tables["eval"]["status"].tolist() == tables["train"]["status"].tolist()


def test_a_deleted_crop_is_cropped_again_on_rerun(tmp_path):
    raw = generate_identities(tmp_path / "raw", num_identities=2, images_per_identity=3, seed=5)
    workspace, options = str(tmp_path / "ws"), {"device": "cpu", "workers": 1, "image_size": 48}
    out = tmp_path / "ws" / "cropped" / "train"
    first = pd.read_parquet(crop_dataset(workspace, str(raw), str(out), options, shard_size=1).path)
    lost = out / first.loc[first["status"] == "ok", "output"].iloc[0]
    pixels = lost.read_bytes()
    lost.unlink()
    again = pd.read_parquet(crop_dataset(workspace, str(raw), str(out), options, shard_size=1).path)
    assert lost.read_bytes() == pixels  # the shard's cached result no longer holds: cropped again, same PNG
    boxes = ["source", "output", "status", "crop_x1", "crop_y1", "crop_x2", "crop_y2"]
    assert again[boxes].equals(first[boxes])  # raw floats may move in the last bits: other batch company


def test_regrouped_shards_and_a_deleted_folder_crop_nothing_again(tmp_path):
    raw = generate_identities(tmp_path / "raw", num_identities=3, images_per_identity=2, seed=5)
    workspace, options = str(tmp_path / "ws"), {"device": "cpu", "workers": 1, "image_size": 48}
    out = tmp_path / "ws" / "cropped" / "train"
    first = pd.read_parquet(crop_dataset(workspace, str(raw), str(out), options, shard_size=1).path)
    gone, *kept = sorted(p.name for p in raw.iterdir() if p.is_dir())
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert any(p.parent.name == gone for p in stamps)
    shutil.rmtree(raw / gone)
    again = pd.read_parquet(crop_dataset(workspace, str(raw), str(out), options, shard_size=2).path)
    left = {p: t for p, t in stamps.items() if p.parent.name != gone}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == left  # gone's crops removed, none redone
    assert [p.stem for p in (out / ".shards").glob("*.parquet")] == [shard_id(kept)]
    same = first[~first["source"].str.startswith(f"{gone}/")].reset_index(drop=True)
    assert again.equals(same)
