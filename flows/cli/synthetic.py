"""`facenet synthetic OUT_DIR`: generate the demo dataset (synthetic faces) and its archive."""

from __future__ import annotations

import argparse
import json

from facenet_core.config.schema import SYNTHETIC_RANGES
from flows.cli.args import add_flag, ranged

COUNTS = {
    "num_train_identities": (64, "identities in train/"),
    "num_eval_identities": (16, "held-out identities in eval/ (the pairs use only these)"),
    "images_per_identity": (12, "pictures per identity"),
    "seed": (0, "random seed: the same seed gives the same archive bytes"),
    "num_folds": (10, "folds of pairs.txt (LFW View 2 has 10)"),
    "pairs_per_fold": (30, "same pairs per fold (as many different pairs follow)"),
    "image_size": (250, "picture width and height in pixels (LFW: 250)"),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthetic",
        help="generate the synthetic-faces demo dataset and its checksummed archive",
        description=(
            "Render seeded synthetic identities as simple faces MTCNN detects, in LFW's layout: "
            "OUT_DIR/train/<identity>/<identity>_<nnnn>.jpg, OUT_DIR/eval/ (held-out identities), "
            "OUT_DIR/pairs.txt (LFW View 2 format over eval/), then OUT_DIR/synthetic_faces.tar.gz holding "
            "all of it and its sha256 beside it (.sha256)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out_dir", help="folder to write the dataset and archive into")
    for name, (default, doc) in COUNTS.items():
        low, high = SYNTHETIC_RANGES[name]
        add_flag(parser, name, dest=name, type=ranged({"ge": low, "le": high}), default=default, help=doc)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenet_core.synthetic.demo import make_demo_dataset

    made = make_demo_dataset(args.out_dir, **{name: getattr(args, name) for name in COUNTS})
    print(json.dumps({key: str(value) for key, value in made.items()}, indent=2))
    return 0
