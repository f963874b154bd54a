"""Writes a `facenet` model folder: MLflow's pytorch flavour (a picklable eager nn.Module that can
be fine-tuned after loading), the preprocessing contract, the model card, and a python_function
flavour served by `facenet_core.tracking.pyfunc`. Used as the `flavor` of `mlflow.models.Model.log`.

Pickle, not MLflow 3's default pt2 export: pt2 traces a fixed graph that cannot train and needs
the model's code only at export time; the pickled module needs facenet-flow installed to load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_core.fileio import atomic_write_json, atomic_write_text
from facenet_core.tracking.contract import CONTRACT_FILE

MODEL_CARD_FILE = "MODEL_CARD.md"
PYFUNC_LOADER = "facenet_core.tracking.pyfunc"


def save_model(
    path: str,
    mlflow_model: Any,
    pytorch_model: Any,
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

    mlflow.pytorch.save_model(
        pytorch_model,
        path,
        mlflow_model=mlflow_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        serialization_format="pickle",
    )
    atomic_write_json(Path(path) / CONTRACT_FILE, contract)
    atomic_write_text(Path(path) / MODEL_CARD_FILE, model_card)
    pyfunc_conf = mlflow_model.flavors[FLAVOR_NAME]
    pyfunc_conf[MAIN] = PYFUNC_LOADER
    pyfunc_conf.pop("data", None)  # the loader gets the model folder itself
    pyfunc_conf.pop("pickle_module_name", None)
    mlflow_model.save(str(Path(path) / "MLmodel"))
