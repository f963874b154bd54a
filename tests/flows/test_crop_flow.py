"""The facenet-crop flow: one tree cropped into two folders of one workspace gets two sets of crops."""

import pandas as pd
import pytest

from facenet_core.data.synthetic import generate_identities
from flows.crop import crop_dataset

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_same_tree_into_two_output_folders_crops_both(tmp_path):
    raw = generate_identities(tmp_path / "raw", num_identities=2, images_per_identity=3, seed=5)
    workspace, options = str(tmp_path / "ws"), {"device": "cpu", "workers": 1, "image_size": 48}
    tables = {}
    for name in ("train", "eval"):
        out = tmp_path / "ws" / "cropped" / name
        result = crop_dataset(workspace, str(raw), str(out), options, shard_size=1)
        tables[name] = pd.read_parquet(result["detections"])
        assert result["detections"] == str(out / "detections.parquet")
        assert len(list((out / ".shards").glob("*.parquet"))) == 2
        assert all((out / o).is_file() for o in tables[name].loc[tables[name]["status"] == "ok", "output"])
    assert len(tables["eval"]) == 6 and tables["eval"]["status"].tolist() == tables["train"]["status"].tolist()
