"""`facenet crop INPUT_ROOT OUTPUT_ROOT`: MTCNN-crop (or align) a tree of identity folders (no Prefect needed)."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from flows.cli.args import add_flag, config_range, device_option, parse_bool

if TYPE_CHECKING:
    from facenet_core.detect.options import CropOptions


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "crop",
        help="detect one face per image with MTCNN and save image_size x image_size PNG crops",
        description=(
            "Crop INPUT_ROOT/<identity>/<image> into OUTPUT_ROOT/<identity>/<stem>.png as the reference "
            "alignment script does (MTCNN, one face per image, margin/2 per side, bilinear resize), or with "
            "--method aligned warp each face so its 5 landmarks land on the ArcFace template (no margin), and "
            "write OUTPUT_ROOT/detections.parquet with one row per source image. Reruns skip finished images. "
            "OUTPUT_ROOT must not be, contain or lie inside INPUT_ROOT; a second crop of the same "
            "OUTPUT_ROOT while one runs stops with an error."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("input_root", help="folder of identity folders holding the images")
    parser.add_argument("output_root", help="folder that receives <identity>/<stem>.png and detections.parquet")
    add_flag(
        parser, "image_size", type=config_range("crop_image_size"), default=224, help="side of the square crops (px)"
    )
    parser.add_argument(
        "--method",
        choices=("mtcnn", "aligned"),
        default="mtcnn",
        help="mtcnn: the face box (plus margin) resized; aligned: the face warped onto the ArcFace 5-point template",
    )
    parser.add_argument(
        "--margin",
        type=config_range("crop_margin"),
        default=0,
        help="pixels added around the face box (half per side); mtcnn only",
    )
    parser.add_argument("--device", type=device_option, default="auto", help="auto, cpu, cuda or cuda:N")
    add_flag(
        parser, "crop_batch_size", type=config_range("crop_batch_size"), default=16, help="images per detector call"
    )
    parser.add_argument(
        "--workers", type=config_range("crop_workers"), default=0, help="worker processes (0: one per CPU core)"
    )
    add_flag(parser, "shard_size", type=config_range("crop_shard_size"), default=256, help="identity folders per shard")
    add_flag(
        parser,
        "png_compress_level",
        type=int,
        default=1,
        choices=range(10),
        metavar="0-9",
        help="zlib level of the PNGs written (6, the reference's, gives ~17%% smaller files, encoded ~5x slower)",
    )
    add_flag(
        parser,
        "exif_transpose",
        type=parse_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="rotate images by their EXIF orientation (the reference ignores it)",
    )
    add_flag(
        parser,
        "crop_batch_megapixels",
        type=float,
        default=32.0,
        metavar="MP",
        help="megapixels of the images detected together, 1..1000 (a larger photo is detected alone, its "
        "pyramid in tiles): bounds the detector's memory whatever the photo sizes",
    )
    add_flag(
        parser,
        "no_progress",
        dest="progress",
        action="store_false",
        help="no progress bar (images, images/s, ETA) on stderr; it is shown only when stderr is a terminal anyway",
    )
    parser.set_defaults(func=run)


def crop_options(args: argparse.Namespace) -> CropOptions:
    """The crop stage's options of the command's flags (the flow's come from the config: CropOptions.from_config)."""
    from facenet_core.detect.options import CropOptions

    return CropOptions(
        image_size=args.image_size,
        margin=args.margin,
        device=args.device,
        batch_size=args.crop_batch_size,
        workers=args.workers,
        exif_transpose=args.exif_transpose,
        png_compress_level=args.png_compress_level,
        batch_megapixels=args.crop_batch_megapixels,
        method=args.method,
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facenet_core.detect.crop import images_of
    from facenet_core.detect.parallel import crop_tree

    options = crop_options(args)
    started = time.perf_counter()
    # disable=None: tqdm draws only when stderr is a terminal, so logs and CI output stay clean.
    with tqdm(desc="crop", unit="img", disable=None if args.progress else True, dynamic_ncols=True) as bar:
        summary = crop_tree(args.input_root, args.output_root, options, shard_size=args.shard_size, progress=bar)
    seconds = time.perf_counter() - started
    summary["seconds"] = round(seconds, 1)
    summary["images_per_second"] = round(images_of(summary) / max(seconds, 1e-9), 1)
    print(json.dumps(summary, indent=2))
    return 0
