"""`facenet manifest DATAROOT --out FILE.parquet`: scan identity folders into the Parquet manifest."""

from __future__ import annotations

import argparse
import json

from flows.cli.args import add_flag, config_range


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "manifest",
        help="scan <root>/<identity>/<image> into a Parquet manifest",
        description=(
            "Scan a dataset root of identity folders into a Parquet manifest (path, identity, label, width, "
            "height, bytes), with <stem>.rejects.parquet and <stem>.summary.json beside it."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dataroot", nargs="?", help="folder of identity folders (not with --from_csv)")
    add_flag(
        parser,
        "from_csv",
        default=None,
        help="a CSV of the seed's generate_csv_files.py (id,name,class) to convert instead of scanning; "
        "rows whose <root>/<name>/<id>.jpg|.png|.jpeg is missing are rejected",
    )
    parser.add_argument("--root", default=None, help="with --from_csv: the folder the CSV's names are relative to")
    parser.add_argument("--out", required=True, help="manifest file to write (.parquet)")
    add_flag(parser, "identities_file", default=None, help="keep only the identities listed (one per line)")
    parser.add_argument(
        "--fast", action="store_true", help="trust extensions: read only image headers instead of decoding"
    )
    parser.add_argument("--dedupe", action="store_true", help="drop byte-identical duplicates (reads every byte)")
    parser.add_argument(
        "--workers", type=config_range("num_workers"), default=0, help="scan processes (0: one per CPU core)"
    )
    add_flag(parser, "no_progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _from_csv(args: argparse.Namespace) -> int:
    from facenet_core.data.seed_csv import build_manifest_from_csv
    from facenet_core.errors import UserError

    if args.dataroot or not args.root or args.identities_file or args.dedupe:
        raise UserError(
            "--from_csv takes the image folder as --root DIR, without DATAROOT, --identities_file or --dedupe"
        )
    summary = build_manifest_from_csv(
        args.from_csv, args.root, args.out, validate=not args.fast, workers=args.workers, progress=not args.no_progress
    )
    print(json.dumps({**summary, "empty_identities": len(summary["empty_identities"])}, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    from facenet_core.data.manifest import build_manifest

    if args.from_csv:
        return _from_csv(args)
    if not args.dataroot:
        from facenet_core.errors import UserError

        raise UserError("give DATAROOT (a folder of identity folders) or --from_csv FILE --root DIR")
    summary = build_manifest(
        args.dataroot,
        args.out,
        identities_file=args.identities_file,
        validate=not args.fast,
        dedupe=args.dedupe,
        workers=args.workers,
        progress=not args.no_progress,
    )
    shown = {k: v for k, v in summary.items() if k not in ("empty_identities", "missing_identities")}
    shown["empty_identities"] = len(summary["empty_identities"])
    shown["missing_identities"] = len(summary["missing_identities"])
    print(json.dumps(shown, indent=2))
    return 0
