"""`facenet triplets --manifest M --epoch E --out FILE.npy`: one epoch's triplets and their sidecar."""

from __future__ import annotations

import argparse
import time

from facenet_core.config import load_config
from facenet_core.config.schema import MAX_EPOCHS
from facenet_core.config.stages import STAGE_FIELDS
from flows.cli.args import add_config_arguments, overrides_from_args, ranged

FIELDS = list(STAGE_FIELDS["triplets"])


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "triplets",
        help="draw one epoch's training triplets from a manifest",
        description=(
            "Draw iterations_per_epoch x batch_size triplets (anchor, positive, negative manifest rows) "
            "deterministically from (seed, epoch); writes FILE.npy and FILE.json."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--manifest", required=True, help="manifest (.parquet) built by `facenet manifest`")
    parser.add_argument(
        "--epoch",
        type=ranged({"ge": 0, "lt": MAX_EPOCHS}),
        required=True,
        help="epoch number (part of the random seed)",
    )
    parser.add_argument("--out", required=True, help="triplets file to write (.npy)")
    add_config_arguments(parser, fields=FIELDS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(None, overrides_from_args(args))  # before the heavy imports: errors at once
    from facenet_core.data.manifest import read_manifest
    from facenet_core.data.triplets import TripletParams, draw_and_save

    manifest = read_manifest(args.manifest)
    started = time.perf_counter()
    count = draw_and_save(manifest, args.epoch, TripletParams.from_config(config), args.out)
    seconds = time.perf_counter() - started
    print(f"{count} triplets from {manifest.num_images} images -> {args.out} ({seconds:.2f} s)")
    return 0
