"""`facenet verify IMAGE_A IMAGE_B`: are the faces of two photos the same person?"""

from __future__ import annotations

import argparse

from flows.cli.args import HelpFormatter
from flows.cli.model_options import THRESHOLD_HELP, add_model_arguments, box_text, crop_options, open_model_from_args

EPILOG = """example:
  facenet verify alice.jpg bob.jpg --model models:/facenet@champion   # registered in ./workspace

output (the first line is always `distance <value>`):
  distance 0.734215
  threshold 1.100000 (euclidean; best-accuracy threshold of the model's evaluation)
  decision same
  face A alice.jpg box 61,58,188,197 score 0.9998
  face B bob.jpg box 70,66,181,190 score 0.9995"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="say whether two photos show the same person",
        description="Find the face of each photo as the crop stage does (MTCNN, the model's crop size and margin, "
        "the largest and most central face), embed both with the model and compare their distance (the model's "
        "distance metric) with a threshold: below it, the same person.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("image_a", help="first photo")
    parser.add_argument("image_b", help="second photo")
    add_model_arguments(parser)
    parser.add_argument("--threshold", default="best", help=THRESHOLD_HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenet_core.inference.verify import verify_photos

    opened = open_model_from_args(args)
    result = verify_photos(opened.embedder, args.image_a, args.image_b, crop_options(opened, args), args.threshold)
    print(f"distance {result.distance:.6f}")
    print(f"threshold {result.threshold:.6f} ({result.metric}; {result.threshold_source})")
    print(f"decision {'same' if result.same else 'different'}")
    for name, path, face in (("A", args.image_a, result.faces[0]), ("B", args.image_b, result.faces[1])):
        print(f"face {name} {path} box {box_text(face.box)} score {face.score:.4f}")
    return 0
