"""`facenet run`: the facenet-train flow in this process (embedded Prefect unless a server is set)."""

from __future__ import annotations

import argparse
import json

from facenet_core.config.loading import load_config
from flows.cli.args import add_config_arguments, overrides_from_args
from flows.runtime import prepare_process


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole facenet-train flow from a preset plus overrides",
        description="Run facenet-train in this process: download, crop, manifest, train, evaluate, register. "
        "Stages already done come back Cached.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--preset", default="demo", help="preset: a packaged preset's name or a YAML file")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args)
    cfg = load_config(args.preset, overrides)
    prepare_process(cfg.workspace)
    from flows.train import run_in_process

    summary = run_in_process(args.preset, overrides)
    print(json.dumps(summary, indent=2, default=str))
    return 0
