"""facenet-crop's parameters are typed: the deployment's run form has one field per crop option."""

import pytest
from prefect.exceptions import ParameterTypeError

from facenet_core.detect.options import CropOptions
from flows.crop import crop_dataset


def test_crop_parameter_schema_is_typed():
    schema = crop_dataset.parameters.model_dump()
    properties = schema["properties"]
    assert {name: properties[name]["type"] for name in ("workspace", "input_root", "output_root", "shard_size")} == {
        "workspace": "string",
        "input_root": "string",
        "output_root": "string",
        "shard_size": "integer",
    }
    assert properties["shard_size"]["default"] == 256
    options = schema["definitions"][properties["options"]["$ref"].split("/")[-1]]["properties"]
    assert {name: options[name]["type"] for name in ("image_size", "margin", "device", "exif_transpose")} == {
        "image_size": "integer",
        "margin": "integer",
        "device": "string",
        "exif_transpose": "boolean",
    }
    assert options["image_size"]["default"] == 224 and options["batch_megapixels"]["type"] == "number"
    assert options["thresholds"]["type"] == "array" and options["thresholds"]["maxItems"] == 3


def test_crop_parameters_from_a_form_validate_into_crop_options():
    given = {"workspace": "ws", "input_root": "in", "output_root": "out", "options": {"image_size": 96, "workers": 1}}
    parameters = crop_dataset.validate_parameters(given)
    assert parameters["options"] == CropOptions(image_size=96, workers=1)
    assert parameters["shard_size"] == 256


@pytest.mark.parametrize(
    ("options", "message"),
    [({"image_size": "big"}, "image_size"), ({"png_compress_level": 12}, "png_compress_level must be in 0..9")],
)
def test_bad_crop_parameters_are_refused_before_the_run(options, message):
    given = {"workspace": "ws", "input_root": "in", "output_root": "out", "options": options}
    with pytest.raises(ParameterTypeError, match=message):
        crop_dataset.validate_parameters(given)
