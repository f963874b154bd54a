"""`facenet run`: the facenet-train flow in this process (embedded Prefect unless a server is set)."""

from __future__ import annotations

import argparse
import json

from facenet_core.config.cli_args import add_config_arguments, overrides_from_args
from facenet_core.config.loading import load_config
from flows.presets import resolve_preset
from flows.runtime import prepare_process


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole facenet-train flow from a preset plus overrides",
        description="Run facenet-train in this process: download, crop, manifest, train, evaluate, register. "
        "Stages already done come back Cached.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--preset", default="deployments/demo.yaml", help="YAML preset (a file or a name in deployments/)"
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    preset = resolve_preset(args.preset)
    overrides = overrides_from_args(args)
    cfg = load_config(preset, overrides)
    prepare_process(cfg.workspace)
    from flows.train import run_in_process

    summary = run_in_process(preset, overrides)
    print(json.dumps(summary, indent=2, default=str))
    return 0
