"""Writes a `facenet` model folder: MLflow's pytorch flavour (a pickled eager nn.Module that can be
fine-tuned after loading), the weights as plain tensors with the architecture's name, the
preprocessing contract, the model card, the library's code and a python_function flavour served
by `facenet_core.tracking.pyfunc` (photos in, embeddings out). Used as the `flavor` of
`mlflow.models.Model.log`.

The pyfunc rebuilds the network from `facenet_weights.pt` with `facenet_core.models`, read by
torch's weights-only unpickler, so it loads wherever MLflow refuses pickled models. The pytorch
flavour stays pickled, not MLflow 3's default pt2 export: pt2 traces a fixed graph that cannot
train. The library travels as MLflow `code_paths` (`code/facenet_core` and `code/deployments`, put
on sys.path on load) rather than as a pip requirement: facenet-flow is published on no index, and
the copy is the exact code that registered the model, so its crop and preprocessing cannot drift
from the weights.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import deployments
import facenet_core
from facenet_core.fileio import atomic_write_json, atomic_write_text
from facenet_core.tracking.contract import CONTRACT_FILE
from facenet_core.tracking.pyfunc import DETECT_PARAM, IMAGE_COLUMN, MODEL_CONFIG, WEIGHTS_FILE, result_frame

MODEL_CARD_FILE = "MODEL_CARD.md"
PYFUNC_LOADER = "facenet_core.tracking.pyfunc"
# The input example: a drawn face (no real person), identity 0, picture 1 of the demo's generator.
EXAMPLE_SEED = 0


def package_folders() -> list[str]:
    """The folders of the packages this process runs that the model's code needs: `facenet_core`
    and `deployments` (the presets and dataset catalogue `facenet_core.config` reads)."""
    return [str(Path(package.__file__).parent) for package in (facenet_core, deployments)]


def photo_example() -> Any:
    """A valid input: a DataFrame with one base64 JPEG of a synthetic face."""
    import pandas as pd

    from facenet_core.synthetic.render import render_image

    jpeg = render_image(EXAMPLE_SEED, 0, 1)
    return pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(jpeg).decode("ascii")]})


def serving_signature(contract: dict[str, Any]) -> Any:
    """The pyfunc's signature: the `image` column in, `OUTPUT_COLUMNS` out, the `detect` param."""
    from mlflow.models import infer_signature

    dimension = contract["embedding_dimension"]
    found = ([0.0] * dimension, True, [0, 0, 1, 1], 1.0)
    output = result_frame([found, (None, False, None, None)])
    return infer_signature(photo_example(), output, params={DETECT_PARAM: True})


def save_model(
    path: str,
    mlflow_model: Any,
    pytorch_model: Any,
    architecture: str,
    contract: dict[str, Any],
    model_card: str,
    signature: Any,
    input_example: Any,
    pip_requirements: list[str],
    **_log_options: Any,
) -> None:
    """Save the model folder at `path` (MLflow passes `mlflow_model` and its own options)."""
    import mlflow.pytorch
    from mlflow.pyfunc import FLAVOR_NAME, MAIN
    from mlflow.pyfunc import MODEL_CONFIG as MODEL_CONFIG_KEY

    from facenet_core.train.checkpoints import save_checkpoint

    mlflow.pytorch.save_model(
        pytorch_model,
        path,
        mlflow_model=mlflow_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        code_paths=package_folders(),
        serialization_format="pickle",
    )
    weights = {name: tensor.detach().cpu() for name, tensor in pytorch_model.state_dict().items()}
    save_checkpoint(
        Path(path) / WEIGHTS_FILE,
        {
            "model_architecture": architecture,
            "embedding_dimension": int(contract["embedding_dimension"]),
            "model_state_dict": weights,
        },
    )
    atomic_write_json(Path(path) / CONTRACT_FILE, contract)
    atomic_write_text(Path(path) / MODEL_CARD_FILE, model_card)
    pyfunc_conf = mlflow_model.flavors[FLAVOR_NAME]
    pyfunc_conf[MAIN] = PYFUNC_LOADER
    pyfunc_conf[MODEL_CONFIG_KEY] = dict(MODEL_CONFIG)
    pyfunc_conf.pop("data", None)  # the loader gets the model folder itself
    pyfunc_conf.pop("pickle_module_name", None)
    mlflow_model.save(str(Path(path) / "MLmodel"))
