"""The options `facenet verify`, `embed`, `search` and `export` share: which model, which runtime,
which device, which threshold; and the model they open."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from flows.cli.args import device_option

if TYPE_CHECKING:
    from facenet_core.detect.options import CropOptions
    from facenet_core.inference.runtime import OpenedModel

MODEL_HELP = (
    "the model: an MLflow model URI (models:/facenet@champion, models:/facenet/3, runs:/<id>/model), a logged "
    "model folder, a checkpoint (.pt), or an ONNX file facenet export wrote (.onnx)"
)
THRESHOLD_HELP = (
    "same person below this distance: best (the model's best-accuracy threshold), far1e-3 (its threshold at "
    "that false accept rate) or a number"
)


def add_model_arguments(parser: argparse.ArgumentParser, *, runtime: bool = True) -> None:
    """--model | --checkpoint (one required), --tracking_uri, --device and, with `runtime`, --runtime."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", help=MODEL_HELP)
    group.add_argument("--checkpoint", help="a .pt checkpoint (ours or the seed's): the same as --model FILE")
    parser.add_argument(
        "--tracking_uri",
        "--tracking-uri",
        default=None,
        help="MLflow tracking server or store of a models:/ or runs:/ URI (default: MLFLOW_TRACKING_URI, "
        "else the --workspace's store, where `facenet demo` and `facenet run` register)",
    )
    parser.add_argument("--workspace", default="./workspace", help="workspace whose MLflow store holds the model")
    if runtime:
        parser.add_argument(
            "--runtime",
            choices=("torch", "onnx"),
            default=None,
            help="what runs the model (default: onnx for a .onnx model, torch otherwise)",
        )
    parser.add_argument("--device", type=device_option, default="auto", help="auto, cpu, cuda or cuda:N")


def model_source(args: argparse.Namespace) -> str:
    """The --model or --checkpoint given; a --checkpoint that is not a file is a FileNotFoundError."""
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} not found")
    return args.checkpoint if args.checkpoint is not None else args.model


def open_model_from_args(args: argparse.Namespace) -> OpenedModel:
    """The model the options name, opened as an embedder (MLflow's per-file download bar off: the
    command's own output stays readable)."""
    from facenet_core.inference.runtime import open_model

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    return open_model(
        model_source(args),
        runtime=getattr(args, "runtime", None),
        device=args.device,
        tracking_uri=tracking_uri_of(args),
    )


def tracking_uri_of(args: argparse.Namespace) -> str:
    """--tracking_uri, else MLFLOW_TRACKING_URI, else the --workspace's SQLite store (never ./mlflow.db)."""
    from facenet_core.config import Config
    from facenet_core.errors import UserError
    from facenet_core.tracking.uri import resolve_tracking

    uri = args.tracking_uri or resolve_tracking(Config(workspace=args.workspace))[0]
    store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    reads_store = model_source(args).startswith(("models:/", "runs:/"))
    if reads_store and store is not None and not store.is_file():  # never create an empty store
        raise UserError(
            f"no MLflow store at {store} to read {model_source(args)} from: give the --workspace a flow "
            "registered it in, or --tracking_uri"
        )
    return uri


def crop_options(opened: OpenedModel, args: argparse.Namespace, **settings) -> CropOptions:
    """The crop stage's options that make this model's crops, on --device."""
    return opened.embedder.contract.crop_options(device=args.device, **settings)


def box_text(box: tuple[int, int, int, int]) -> str:
    """A face box as x1,y1,x2,y2."""
    return ",".join(str(value) for value in box)
