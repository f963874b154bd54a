"""`facenet train`: train epochs on an existing manifest (or one built from --cropped_root), resuming."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from facenet_core.config import Config, load_config, save_config
from facenet_core.workspace import Workspace
from flows.cli.args import HelpFormatter, add_config_arguments, overrides_from_args

if TYPE_CHECKING:
    from facenet_core.train.plan import RunPlan

EPILOG = """examples:
  facenet train --cropped_root workspace/cropped/casia --epochs 30 --run_name casia-r34
  facenet train --preset demo --manifest_path workspace/manifests/demo.parquet
  facenet train --manifest_path m.parquet --resume_path model_resnet34_triplet.pt --learning_rate 0.01
  facenet train --manifest_path m.parquet --num_processes 4   # DDP through torchrun"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the triplet-loss model epoch by epoch (resumes runs/<run_key>/)",
        description=(
            "Train on a manifest: per epoch draw the triplets (runs/<key>/triplets/epoch_<e>.npy), train "
            "(runs/<key>/checkpoints/epoch_<e>.pt, last.pt) and print the epoch summary. Rerunning the "
            "same configuration continues from last.pt (or from --resume_path when that is later); "
            "--resume_path starts from any checkpoint, the seed's included. Evaluation is `facenet evaluate` "
            "or the facenet-train flow."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="preset the flags override: a packaged preset's name (demo, lfw_view1) or a YAML file",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def resolve_manifest(config: Config, workspace: Workspace) -> Path:
    """config.manifest_path, else a manifest of --cropped_root under workspace/manifests/."""
    if config.manifest_path:
        return Path(config.manifest_path)
    if not config.cropped_root:
        raise ValueError("give --manifest_path (a manifest .parquet) or --cropped_root (identity folders)")
    from facenet_core.data.manifest import build_manifest

    dataroot = Path(config.cropped_root)
    if not dataroot.is_dir():
        raise FileNotFoundError(f"--cropped_root {dataroot} is not a folder of identity folders")
    path = workspace.manifests / f"{dataroot.resolve().name}.parquet"
    if path.is_file():
        print(f"reusing manifest {path} (delete it to rescan {dataroot})")
        return path
    summary = build_manifest(
        dataroot,
        path,
        identities_file=config.identities_file,
        validate=config.manifest_validate,
        dedupe=config.manifest_dedupe,
    )
    print(f"manifest {path}: {summary['num_images']} images of {summary['num_identities']} identities")
    return path


def epoch_triplets(config: Config, plan: RunPlan, epoch: int, manifest_path: Path) -> Path:
    """--training_triplets_path for the run's first epoch (as the seed), else this epoch's drawn file of
    triplets or PK batches as config.sampling says (drawn once: a rerun takes the file already there)."""
    if config.training_triplets_path and epoch == plan.began:
        return Path(config.training_triplets_path)
    from facenet_core.data import pk_batches, triplets
    from facenet_core.data.manifest import read_manifest_labels

    if config.sampling == "pk":
        path, params, sampling = plan.layout.pk_batches(epoch), pk_batches.PKParams.from_config(config), pk_batches
    else:
        path, params, sampling = plan.layout.triplets(epoch), triplets.TripletParams.from_config(config), triplets
    if not path.is_file():
        sampling.draw_and_save(read_manifest_labels(manifest_path), epoch, params, path)
    return path


def run(args: argparse.Namespace) -> int:
    config = load_config(args.preset, overrides_from_args(args))  # before the heavy imports: errors at once
    from facenet_core.data.manifest import manifest_fingerprint
    from facenet_core.train.launch import run_train_epoch
    from facenet_core.train.plan import plan_run

    workspace = Workspace.from_config(config).ensure()
    manifest_path = resolve_manifest(config, workspace)
    config = config.model_copy(update={"manifest_path": str(manifest_path)})
    plan = plan_run(config, manifest_fingerprint(manifest_path), workspace)
    save_config(config, plan.layout.config)
    checkpoint = plan.resume_checkpoint
    if checkpoint is not None:
        print(f"resuming from {checkpoint} at epoch {plan.first_epoch}")
    if not plan.remaining:
        print(f"{plan.run_dir}: all {config.epochs} epochs are trained (raise --epochs to continue)")
        return 0
    for epoch in plan.remaining:
        triplets = epoch_triplets(config, plan, epoch, manifest_path)
        checkpoint = run_train_epoch(config, epoch, triplets, checkpoint, plan.run_dir)
        _print_summary(checkpoint)
    return 0


def _print_summary(checkpoint: Path) -> None:
    from facenet_core.train.engine import read_epoch_summary

    s = read_epoch_summary(checkpoint)
    changed = f", learning rate changed from {s['learning_rate_previous']:g}" if "learning_rate_previous" in s else ""
    if s.get("optimizer_state") == "fresh":
        print(f"warning: epoch {s['epoch']}: {s['optimizer_state_note']}")
    print(
        f"epoch {s['epoch']}: loss {s['loss']:.4f}, {_selected(s)}, "
        f"lr {s['learning_rate']:g}, {s['images_per_second']:.0f} images/s{changed} -> {checkpoint}"
    )


def _selected(s: dict) -> str:
    """The seed's kept triplets, or the share of an online mining's terms with a positive hinge."""
    if "kept_triplets" in s:
        return f"kept triplets {int(s['kept_triplets'])}/{int(s['triplets'])}"
    return f"{s['mining']}: {s['active_fraction']:.1%} active"
