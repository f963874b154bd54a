"""`facenet evaluate`: any checkpoint (ours or the seed's) on an LFW-style pairs set."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, get_args

from facenet_core.config.schema import Config, DistanceMetric, EvalSet, Protocol
from facenet_core.errors import UserError
from flows.cli.args import HelpFormatter, add_flag, config_range, device_option, parse_bool

if TYPE_CHECKING:
    import torch

    from facenet_core.evaluate.report import EvalResult

EPILOG = """examples:
  facenet evaluate --checkpoint runs/demo/checkpoints/epoch_3.pt --lfw data/lfw/lfw-deepfunneled \\
      --pairs data/lfw/pairs.txt        # raw LFW: MTCNN-cropped first (cached in the workspace)
  facenet evaluate --checkpoint model_resnet34_triplet.pt --lfw workspace/cropped/lfw --cropped \\
      --pairs lfw/pairsDevTest.txt --protocol train_test --train_pairs lfw/pairsDevTrain.txt --flip_tta"""

DEFAULTS = Config()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on LFW pairs (10-fold or View 1 train/test)",
        description="Embed each image of an LFW-style pairs set once and report the seed's metrics: "
        "accuracy, precision, recall, ROC AUC, TAR@FAR=1e-3 and the best distance threshold. "
        "Raw images are first MTCNN-cropped as the training images were (the checkpoint's crop settings) "
        "into the workspace's cropped/ folder, reusing the training crops of the same folder; --cropped "
        "embeds the images as they are. Pairs with a missing or unreadable image are left out and counted.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_flag(
        parser,
        "checkpoint",
        required=True,
        help="a .pt checkpoint (ours or the seed's), or an .onnx file facenet export wrote",
    )
    add_flag(
        parser,
        "runtime",
        choices=("torch", "onnx"),
        default=None,
        help="what runs the model: onnx runs the exported graph in ONNX Runtime (a .pt is exported first, "
        "to a temporary file); default: onnx for an .onnx file, torch otherwise",
    )
    add_flag(parser, "lfw", required=True, help="folder of <person>/<person>_<nnnn>.<ext> images, raw or cropped")
    add_flag(parser, "cropped", action="store_true", help="--lfw holds face crops already: embed them as they are")
    add_flag(
        parser,
        "workspace",
        default=None,
        help="workspace whose cropped/ caches the crops (None: the checkpoint's training workspace when it exists "
        "here, else ./workspace)",
    )
    add_flag(parser, "pairs", default=None, help="pairs file (None: pairs.txt beside the --lfw folder)")
    add_flag(
        parser,
        "protocol",
        choices=get_args(Protocol),
        default="kfold10",
        help="kfold10 (View 2) or train_test (View 1)",
    )
    add_flag(parser, "train_pairs", default=None, help="pairsDevTrain.txt for --protocol train_test")
    add_flag(parser, "people_file", default=None, help="keep only pairs whose people are listed (peopleDevTest.txt)")
    add_flag(
        parser,
        "eval_batch_size",
        type=config_range("eval_batch_size"),
        default=DEFAULTS.eval_batch_size,
        help="images per forward pass",
    )
    add_flag(
        parser,
        "image_size",
        type=config_range("image_size"),
        default=None,
        help="input size (None: the checkpoint's, else 140)",
    )
    add_flag(parser, "device", type=device_option, default=DEFAULTS.device, help="auto, cpu, cuda or cuda:N")
    add_flag(parser, "flip_tta", type=parse_bool, nargs="?", const=True, default=False, help="add mirrored images")
    add_flag(
        parser, "distance_metric", choices=get_args(DistanceMetric), default=DEFAULTS.distance_metric, help="distance"
    )
    add_flag(
        parser,
        "num_workers",
        type=config_range("num_workers"),
        default=None,
        help="image decoding threads (0: in the main thread; None: one per core, at most 8)",
    )
    add_flag(parser, "report_dir", default=None, help="also write metrics.parquet and ROC/accuracy PNGs here")
    add_flag(parser, "json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def _print_metrics(result: EvalResult) -> None:
    m = result.metrics
    print(f"accuracy                 {m['accuracy']:.4f} +- {m['accuracy_std']:.4f}")
    print(f"precision                {m['precision']:.4f} +- {m['precision_std']:.4f}")
    print(f"recall                   {m['recall']:.4f} +- {m['recall_std']:.4f}")
    print(f"roc_auc                  {m['roc_auc']:.4f}")
    print(f"tar_at_far               {m['tar_at_far']:.4f} +- {m['tar_at_far_std']:.4f} @ FAR {m['far']:.4f}")
    print(f"best_distance_threshold  {m['best_distance_threshold']:.2f} +- {m['threshold_std']:.2f}")
    left_out = f"{m['missing_pairs']} left out"
    if "missing_train_pairs" in m:
        left_out += f" ({m['missing_train_pairs']} of the threshold pairs)"
    pairs = f"{m['num_pairs']} ({m['num_same_pairs']} same) in {m['num_folds']} fold(s)"
    print(f"pairs                    {pairs}, {left_out}")
    if result.missing_images:
        shown = ", ".join(result.missing_images[:5])
        more = f" and {len(result.missing_images) - 5} more" if len(result.missing_images) > 5 else ""
        print(f"missing or unreadable    {shown}{more}")


def training_config(checkpoint: dict) -> Config:
    """The config a checkpoint of ours was trained with; the defaults for the seed's (it stores none)."""
    saved = checkpoint.get("config")
    if not isinstance(saved, dict):
        return DEFAULTS
    try:
        return Config.model_validate(saved)
    except ValueError:
        print("warning: the checkpoint's config no longer validates: default crop settings used", file=sys.stderr)
        return DEFAULTS


def _crop(args: argparse.Namespace, checkpoint: dict, device: str) -> Path:
    """The --lfw images MTCNN-cropped as the training images (cached under the workspace's cropped/)."""
    from facenet_core.evaluate.crops import crop_for_evaluation
    from facenet_core.workspace import Workspace

    config = training_config(checkpoint)
    trained_in = Path(config.workspace).expanduser()
    workspace = Workspace(Path(args.workspace or (trained_in if trained_in.is_dir() else DEFAULTS.workspace)).resolve())
    folder, counts = crop_for_evaluation(args.lfw, config, workspace, device=device)
    print(
        f"evaluating on MTCNN crops ({config.crop_image_size} px, margin {config.crop_margin}) in {folder}: "
        f"{counts['ok']} faces ({counts['resumed']} images reused from earlier crops), {counts['no_face']} "
        "without a face; --cropped evaluates the --lfw images as they are",
        file=sys.stderr,
    )
    return folder


def run(args: argparse.Namespace) -> int:
    from facenet_core.devices import resolve_device
    from facenet_core.inference.runtime import runtime_for
    from facenet_core.train.checkpoints import load_model_from_checkpoint

    device = resolve_device(args.device)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} not found")
    with ExitStack() as scope:
        if runtime_for(args.checkpoint, args.runtime) == "onnx":
            model, checkpoint = _onnx_model(args.checkpoint, str(device), scope)
            if args.image_size and args.image_size != checkpoint["image_size"]:
                raise UserError(
                    f"--image_size {args.image_size}: the ONNX graph takes {checkpoint['image_size']} px inputs "
                    "(leave --image_size out, or use --runtime torch)"
                )
        else:
            model, checkpoint = load_model_from_checkpoint(args.checkpoint, device=device)
        return _evaluate(args, model, checkpoint, device)


def _onnx_model(source: str, device: str, scope: ExitStack) -> tuple[torch.nn.Module, dict]:
    """The model at `source` run by ONNX Runtime (a checkpoint exported into a temporary folder first),
    and what `run` reads of a checkpoint: the checkpoint itself, or for an .onnx file its contract's
    input size, normalisation and crop settings."""
    from facenet_core.inference.onnx import OnnxEmbedder, OnnxModule
    from facenet_core.inference.runtime import ONNX_SUFFIX, export_model, onnx_providers
    from facenet_core.train.checkpoints import load_checkpoint

    path = Path(source)
    if path.suffix.lower() != ONNX_SUFFIX:
        exported = export_model(source, Path(scope.enter_context(TemporaryDirectory())) / "model.onnx")[0]
        return OnnxModule(OnnxEmbedder(exported, providers=onnx_providers(device))), load_checkpoint(source)
    embedder = OnnxEmbedder(path, providers=onnx_providers(device))
    contract = embedder.contract
    crop = {"crop_image_size": contract.crop_image_size, "crop_margin": contract.crop_margin}
    described = {
        "image_size": contract.input_size,
        "normalize_mean": list(contract.mean),
        "normalize_std": list(contract.std),
        "config": {name: value for name, value in crop.items() if value is not None},
    }
    return OnnxModule(embedder), described


def _evaluate(args: argparse.Namespace, model, checkpoint: dict, device) -> int:
    from facenet_core.evaluate.report import evaluate_model, write_epoch_report

    pairs = args.pairs or str(Path(args.lfw).parent / "pairs.txt")
    for flag, path in (("--pairs", pairs), ("--train_pairs", args.train_pairs), ("--people_file", args.people_file)):
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path} not found (the default --pairs is pairs.txt beside --lfw)")
    images = args.lfw if args.cropped else _crop(args, checkpoint, str(device))
    eval_set = EvalSet(
        name="lfw",
        root=str(images),
        pairs=pairs,
        protocol=args.protocol,
        train_pairs=args.train_pairs,
        people_file=args.people_file,
    )
    result = evaluate_model(
        model,
        eval_set,
        image_size=args.image_size or int(checkpoint.get("image_size", DEFAULTS.image_size)),
        mean=checkpoint.get("normalize_mean", DEFAULTS.normalize_mean),
        std=checkpoint.get("normalize_std", DEFAULTS.normalize_std),
        batch_size=args.eval_batch_size,
        device=str(device),
        distance_metric=args.distance_metric,
        flip_tta=args.flip_tta,
        num_workers=args.num_workers,
    )
    epoch = int(checkpoint.get("epoch", 0))
    if args.report_dir:
        write_epoch_report(args.report_dir, epoch, Path(args.lfw).name, result)
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    else:
        _print_metrics(result)
    return 0
