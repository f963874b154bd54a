"""`facenet download`: a catalogue dataset or one URL; RecordIO unpacking; .bin conversion.

Only transient failures (timeouts, refused or reset connections, short bodies, HTTP 5xx/408/429)
are retried, `--retries` times; a 404 or a checksum mismatch fails at once, as one line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facenet_core.config.schema import DatasetConfig
from facenet_core.errors import UserError
from facenet_core.safepath import safe_name
from facenet_core.workspace import Workspace
from flows.cli.args import HelpFormatter, add_flag

EPILOG = """examples:
  facenet download --list
  facenet download lfw --workspace ./workspace
  facenet download glint360k --mirror /mnt/torrents/glint360k
  facenet download https://example.org/file.tgz --sha256 <hex> --dest ./downloads
  facenet download --unpack_recordio glint360k/train.rec --dest ./raw/glint360k/images
  facenet download --convert_bin glint360k/lfw.bin --dest ./raw/glint360k_lfw"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download",
        help="fetch and extract a dataset (catalogue name or URL); unpack RecordIO; convert .bin sets",
        description="Fetch a catalogue dataset into <workspace>/raw/<name> (verified, resumable, extracted) "
        "or one file from a URL/path; or unpack an MXNet .rec, or convert an insightface .bin.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("source", nargs="?", help="catalogue entry (or file.yaml#entry), URL or local path")
    add_flag(parser, "dest", default=None, help="folder for a URL's file or for --unpack_recordio/--convert_bin output")
    add_flag(parser, "workspace", default="./workspace", help="workspace root (downloads/ and raw/ inside)")
    add_flag(parser, "sha256", default=None, help="expected sha256 of a URL's file")
    add_flag(parser, "md5", default=None, help="expected md5 of a URL's file")
    add_flag(parser, "filename", default=None, help="name to save a URL's file under (None: last URL segment)")
    add_flag(parser, "mirror", default=None, help="folder or base URL holding every file of the catalogue entry")
    add_flag(
        parser, "retries", type=int, default=5, help="further attempts after a transient failure (timeout, reset, 5xx)"
    )
    add_flag(parser, "unpack_recordio", default=None, metavar="REC", help="unpack this .rec into --dest")
    add_flag(
        parser, "convert_bin", default=None, metavar="BIN", help="convert this .bin into --dest (images, pairs.txt)"
    )
    add_flag(parser, "list", action="store_true", help="list the catalogue entries and exit")
    add_flag(parser, "quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _list() -> int:
    from facenet_core.ingest.catalogue import load_catalogue

    for name, entry in sorted(load_catalogue().items()):
        print(f"{name}: {entry.description}\n  contains: {entry.contains}\n  licence: {entry.licence}")
        print(f"  disk: {entry.disk}\n  format: {entry.format}, aligned: {entry.aligned}")
    return 0


def _needs_dest(args: argparse.Namespace, flag: str) -> Path:
    if not args.dest:
        raise ValueError(f"{flag} needs --dest (the output folder)")
    return Path(args.dest)


def _is_location(source: str) -> bool:
    try:
        return "://" in source or Path(source).expanduser().is_file()
    except OSError:  # a name too long to be a path: a (bad) catalogue name
        return False


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    from facenet_core.ingest.catalogue import with_mirror
    from facenet_core.ingest.download import fetch
    from facenet_core.ingest.insightface_bin import convert_bin
    from facenet_core.ingest.prepare import prepare_raw
    from facenet_core.ingest.recordio_unpack import unpack_recordio

    progress = not args.quiet
    if args.retries < 0:
        raise UserError(f"--retries must be 0 or more, got {args.retries}")
    if args.unpack_recordio:
        summary = unpack_recordio(args.unpack_recordio, _needs_dest(args, "--unpack_recordio"), progress=progress)
        print(json.dumps(summary, indent=2))
        return 0
    if args.convert_bin:
        print(json.dumps(convert_bin(args.convert_bin, _needs_dest(args, "--convert_bin")), indent=2))
        return 0
    if not args.source:
        raise ValueError("give a catalogue entry or URL (see --list), --unpack_recordio or --convert_bin")
    workspace = Workspace(Path(args.workspace).expanduser().resolve())
    if _is_location(args.source):
        dest = Path(args.dest) if args.dest else workspace.downloads
        path = fetch(
            args.source,
            dest,
            sha256=args.sha256,
            md5=args.md5,
            filename=args.filename,
            retries=args.retries,
            progress=progress,
        )
        print(path)
        return 0
    name = safe_name(args.source.rsplit("#", 1)[-1], what="dataset name")
    dataset = DatasetConfig(name=name, catalogue=args.source)
    if args.mirror:
        dataset = with_mirror(dataset, args.mirror)
    print(prepare_raw(dataset, workspace, progress=progress, retries=args.retries))
    return 0
