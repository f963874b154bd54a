"""facenet-evaluate: raw evaluation images go through the crop stage (the training crops of the same
folder reused); an --lfw folder marked lfw_cropped is evaluated as it is."""

import pytest
import torch
import yaml
from PIL import Image

from facenet_core.config import Config
from facenet_core.config.loading import config_to_dict
from facenet_core.models import create_model
from facenet_core.synthetic.demo import generate_identities
from flows.evaluate import facenet_evaluate
from flows.overrides import ConfigOverrides

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_evaluate_flow_crops_into_the_training_folder_or_not_at_all(tmp_path):
    data = tmp_path / "data"
    raw = generate_identities(data / "faces", num_identities=4, images_per_identity=2, seed=5, image_size=96)
    lines = ["10\t1"]
    for k in range(10):
        a, b = f"person_{k % 4:04d}", f"person_{(k + 1) % 4:04d}"
        lines += [f"{a}\t1\t2", f"{a}\t{1 + k % 2}\t{b}\t{1 + (k + 1) % 2}"]
    pairs = tmp_path / "data" / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    workspace = tmp_path / "ws"
    preset = tmp_path / "preset.yaml"
    settings = {
        "workspace": str(workspace),
        "dataset": {"name": "mini", "path": str(raw)},
        "eval_sets": [{"name": "mini-pairs", "root": str(raw), "pairs": str(pairs)}],
        "model_architecture": "resnet18",
        "embedding_dimension": 8,
        "image_size": 32,
        "crop_image_size": 96,
        "crop_workers": 1,
        "device": "cpu",
        "num_workers": 0,
    }
    preset.write_text(yaml.safe_dump(settings))
    torch.manual_seed(0)
    checkpoint = tmp_path / "run" / "epoch_0.pt"
    checkpoint.parent.mkdir()
    torch.save(
        {
            "epoch": 0,
            "embedding_dimension": 8,
            "model_state_dict": create_model("resnet18", 8).state_dict(),
            "model_architecture": "resnet18",
            "config": config_to_dict(Config.model_validate(settings)),
        },
        checkpoint,
    )

    [evaluated] = facenet_evaluate(str(checkpoint), str(preset))
    result = evaluated.evaluation
    crops = workspace / "cropped" / "mini-image_size96"  # the training flow's folder for these images
    assert sorted(p.name for p in (workspace / "cropped").iterdir()) == [crops.name]
    assert Image.open(crops / "person_0002" / "person_0002_0001.png").size == (96, 96)
    assert result.metrics["num_pairs"] == 20 and result.metrics["missing_pairs"] == 0

    as_is = ConfigOverrides(eval_sets=[], lfw=str(crops), lfw_pairs=str(pairs), lfw_cropped=True)
    [cropped] = facenet_evaluate(str(checkpoint), str(preset), as_is)
    cropped_result = cropped.evaluation
    assert sorted(p.name for p in (workspace / "cropped").iterdir()) == [crops.name]  # nothing cropped again
    assert cropped_result.eval_set == "lfw"
    assert cropped_result.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert cropped_result.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert cropped.reports.roc.is_file()
