"""`facenet search QUERY... --gallery EMBEDDINGS.parquet`: the nearest identities of query photos."""

from __future__ import annotations

import argparse

from flows.cli.args import HelpFormatter, ranged
from flows.cli.model_options import THRESHOLD_HELP, add_model_arguments, box_text, crop_options, open_model_from_args

EPILOG = """example:
  facenet embed photos/ --checkpoint best.pt --out gallery.parquet
  facenet search who.jpg --gallery gallery.parquet --checkpoint best.pt --top_k 3

output (per query: rank, identity, distance, decision against the threshold, its nearest face):
  threshold 1.100000 (euclidean; best-accuracy threshold of the model's evaluation)
  query who.jpg box 61,58,188,197
    1  alice  0.734215  same       photos/alice/alice_0002.jpg face 0
    2  bob    1.201334  different  photos/bob/bob_0001.jpg face 0"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="find the nearest gallery identities of the faces in photos",
        description="Embed the face of each query photo (the one the crop stage keeps) and search a gallery made "
        "by facenet embed with the same model: the top_k nearest identities (the identity column, else the "
        "source photo), each at the distance of its nearest face, exactly. The gallery is streamed in batches "
        "of rows, so its size is bounded by the disk, not the memory.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="query photos")
    parser.add_argument("--gallery", required=True, help="an embeddings table written by facenet embed")
    parser.add_argument(
        "--top_k", "--top-k", type=ranged({"ge": 1}), default=5, help="nearest identities shown per query"
    )
    add_model_arguments(parser)
    parser.add_argument("--threshold", default="best", help=THRESHOLD_HELP)
    parser.add_argument(
        "--batch_rows",
        "--batch-rows",
        type=ranged({"ge": 1}),
        default=32768,
        help="gallery rows read and compared at a time: memory grows with it, not with the gallery",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facenet_core.inference.search import search_photos

    opened = open_model_from_args(args)
    threshold, source = opened.embedder.contract.threshold(args.threshold)
    results = search_photos(
        opened,
        args.queries,
        args.gallery,
        crop_options(opened, args),
        top_k=args.top_k,
        batch_rows=args.batch_rows,
        device=args.device,
    )
    print(f"threshold {threshold:.6f} ({opened.embedder.contract.distance_metric}; {source})")
    for result in results:
        if result.face is None:
            print(f"query {result.path} no face found")
            continue
        print(f"query {result.path} box {box_text(result.face.box)}")
        width = max(len(match.label) for match in result.matches) if result.matches else 0
        for rank, match in enumerate(result.matches, 1):
            decision = "same" if match.distance < threshold else "different"
            where = f"{match.source} face {match.face_index}"
            print(f"  {rank:>2}  {match.label:<{width}}  {match.distance:.6f}  {decision:<9}  {where}")
    return 0
