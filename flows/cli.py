"""The `facenet` command: core subcommands from facenet_core.commands plus the flow commands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from facenet_core.env import disable_telemetry


def _command_modules() -> list:
    import facenet_core.commands as core_commands
    from flows import commands as flow_commands

    modules = []
    for package in (core_commands, flow_commands):
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                modules.append(importlib.import_module(f"{package.__name__}.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="facenet",
        description="facenet-flow: FaceNet triplet-loss training as a cached, retryable pipeline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `facenet` console script."""
    disable_telemetry()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"facenet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
