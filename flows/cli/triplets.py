"""`facenet triplets --manifest M --epoch E --out FILE.npy`: one epoch's triplets (or, with
--sampling pk, its P x K batches) and their sidecar."""

from __future__ import annotations

import argparse
import time

from facenet_core.config import load_config
from facenet_core.config.schema import MAX_EPOCHS
from facenet_core.config.stages import STAGE_FIELDS
from flows.cli.args import add_config_arguments, overrides_from_args, ranged

FIELDS = list(dict.fromkeys(["sampling", *STAGE_FIELDS["triplets"], *STAGE_FIELDS["pk-batches"]]))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "triplets",
        help="draw one epoch's training triplets (or P x K batches) from a manifest",
        description=(
            "Draw one epoch's training index deterministically from (seed, epoch), reading only the "
            "manifest's label column; writes FILE.npy and FILE.json. --sampling triplets (default): "
            "iterations_per_epoch x batch_size triplets (anchor, positive, negative manifest rows) from "
            "num_human_identities_per_batch identities per batch. --sampling pk: iterations_per_epoch "
            "batches of pk_identities distinct identities (each with two images or more) x pk_images "
            "images, one row per batch, the images of an identity side by side (an identity with fewer "
            "than pk_images images repeats some)."
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
    parser.add_argument("--out", required=True, help="file to write (.npy)")
    add_config_arguments(parser, fields=FIELDS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args)
    if overrides.get("sampling") == "pk":
        overrides.setdefault("mining", "batch_hard")  # the mining does not change the draw; pk needs a batch mining
    config = load_config(None, overrides)  # before the heavy imports: errors at once
    from facenet_core.data import pk_batches, triplets
    from facenet_core.data.manifest import read_manifest_labels

    started = time.perf_counter()
    manifest = read_manifest_labels(args.manifest)
    if config.sampling == "pk":
        count = pk_batches.draw_and_save(manifest, args.epoch, pk_batches.PKParams.from_config(config), args.out)
        what = f"{count} batches of {config.pk_identities} x {config.pk_images} images"
    else:
        count = triplets.draw_and_save(manifest, args.epoch, triplets.TripletParams.from_config(config), args.out)
        what = f"{count} triplets"
    seconds = time.perf_counter() - started
    print(f"{what} from {manifest.num_images} images -> {args.out} ({seconds:.2f} s)")
    return 0
