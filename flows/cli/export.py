"""`facenet export --out FILE.onnx`: a model as ONNX, with its contract, for ONNX Runtime."""

from __future__ import annotations

import argparse

from flows.cli.args import HelpFormatter
from flows.cli.model_options import add_model_arguments, model_source, tracking_uri_of

EPILOG = """example:
  facenet export --checkpoint best.pt --out facenet.onnx
  facenet verify a.jpg b.jpg --model facenet.onnx          # run by ONNX Runtime"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (its contract and identity in the file's metadata)",
        description="Write the model as an ONNX file: input float32 N x 3 x S x S normalised as the contract says, "
        "output the N x D unit-length embeddings; the contract (crop, input size, normalisation, distance "
        "metric, thresholds) and the model's identity are in the metadata, so verify, embed and search run it "
        "with --model FILE.onnx and a gallery embedded with the original model can be searched with it. "
        "Written atomically.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", required=True, help="the .onnx file to write (replaced if it exists)")
    add_model_arguments(parser, runtime=False)
    parser.set_defaults(func=run, device="cpu")


def run(args: argparse.Namespace) -> int:
    from facenet_core.inference.runtime import export_model

    path, identity = export_model(model_source(args), args.out, device=args.device, tracking_uri=tracking_uri_of(args))
    print(f"wrote {path} (model {identity})")
    return 0
