"""`facenet embed INPUTS... --out FILE.parquet`: the embeddings of the faces in photos, as a table."""

from __future__ import annotations

import argparse
import json
import time

from flows.cli.args import HelpFormatter, config_range
from flows.cli.model_options import add_model_arguments, crop_options, open_model_from_args

EPILOG = """examples:
  facenet embed photos/ --checkpoint best.pt --out gallery.parquet          # photos/<person>/<img>: identities
  facenet embed party.jpg holiday/ --model model.onnx --faces all --out faces.parquet"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="embed the faces of photos or folders into a Parquet table (a gallery for facenet search)",
        description="Find faces as the crop stage does and write one row per face to a Parquet table: source, "
        "identity (the folder name for a folder of identity folders), face_index, box, score, embedding (a "
        "fixed-size list of float32), model and status. A photo without a face, or that cannot be read, is a "
        "row with status no_face or 'unreadable: <reason>'. A folder holding images is read flat; one holding "
        "none is read as <folder>/<person>/<image>. The table is written atomically.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="photos and folders of photos")
    parser.add_argument("--out", required=True, help="the Parquet table to write (replaced if it exists)")
    add_model_arguments(parser)
    parser.add_argument(
        "--faces", choices=("one", "all"), default="one", help="one: the face the crop stage keeps; all: every face"
    )
    parser.add_argument(
        "--batch_size",
        "--batch-size",
        type=config_range("crop_batch_size"),
        default=16,
        help="photos decoded, detected (one detector call) and embedded together",
    )
    parser.add_argument(
        "--no_progress",
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (photos, photos/s, ETA) on stderr; it is shown only when stderr is a terminal anyway",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facenet_core.inference.gallery import write_embeddings
    from facenet_core.inference.photos import list_photos

    photos = list_photos(args.inputs)
    opened = open_model_from_args(args)
    options = crop_options(opened, args, batch_size=args.batch_size)
    started = time.perf_counter()
    # disable=None: tqdm draws only when stderr is a terminal, as the crop command's bar.
    with tqdm(
        total=len(photos), desc="embed", unit="photo", disable=None if args.progress else True, dynamic_ncols=True
    ) as bar:
        counts = write_embeddings(opened, photos, args.out, options, policy=args.faces, on_batch=bar.update)
    seconds = time.perf_counter() - started
    summary = {"out": args.out, "model": opened.identity, **counts, "seconds": round(seconds, 1)}
    summary["photos_per_second"] = round(counts["photos"] / max(seconds, 1e-9), 1)
    print(json.dumps(summary, indent=2))
    return 0
