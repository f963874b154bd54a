"""The `facenet` command: one module per subcommand, listed in COMMANDS, each offering `register(subparsers)`.

Only the command being run is imported (`facenet triplets` does not load the modules of `train` or
`verify`); `facenet --help` and a mistyped command import them all.

`main` is the one error boundary. A mistake the user can fix ends as one line on stderr,
`facenet <cmd>: error: <message>`, exit code 2: a UserError (raised where the file or parameter is
known), a ValueError (the library's convention for bad input; UserError subclasses it, and so do
pydantic's ValidationError and UnicodeDecodeError), a YAML error, or an OSError (a path that is
missing, a file where a folder is needed, no permission, a full disk). Any other exception is a bug
and keeps its traceback. `--debug` or FACENET_DEBUG=1 prints the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from facenet_core.env import disable_telemetry

# The subcommands in the order `facenet --help` lists them; each is the module of flows.cli of that
# name (a hyphen read as an underscore).
COMMANDS = (
    "demo",
    "run",
    "download",
    "crop",
    "manifest",
    "stats",
    "triplets",
    "train",
    "evaluate",
    "verify",
    "embed",
    "search",
    "export",
    "synthetic",
    "mlflow-replay",
)

DEBUG_ENV = "FACENET_DEBUG"
OS_ERROR_ADVICE = {
    FileNotFoundError: "does not exist: check the path",
    IsADirectoryError: "is a folder where a file is needed: give a file path",
    NotADirectoryError: "has a file where a folder is needed: give a path whose parents are folders",
    FileExistsError: "already exists and is not a folder: give another path or move that file away",
    PermissionError: "is not accessible (permission denied): choose another location or fix its permissions",
}


class Parser(argparse.ArgumentParser):
    """argparse with usage mistakes reported as one line (`--help` shows the usage)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_named(argv: Sequence[str] | None) -> str | None:
    """The subcommand `argv` runs (its first word that is not an option), if it is one of COMMANDS."""
    first = next((word for word in argv or () if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand `argv` names is registered when it names one, else all of them.
    `--debug` works before or after the command."""
    parser = Parser(
        prog="facenet",
        description="facenet-flow: FaceNet triplet-loss training as a cached, retryable pipeline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    debug_help = f"print the traceback of errors (also {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = command_named(argv)
    for name in [named] if named else COMMANDS:
        importlib.import_module(f"flows.cli.{name.replace('-', '_')}").register(subparsers)
    for subparser in subparsers.choices.values():
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def user_message(error: BaseException) -> str | None:
    """The one-line message for an error the user can fix; None for a bug (an unexpected exception)."""
    import yaml

    if isinstance(error, OSError) and error.filename is not None and not isinstance(error, ConnectionError):
        path = error.filename2 or error.filename  # a rename into place fails on its target
        advice = next((text for kind, text in OS_ERROR_ADVICE.items() if isinstance(error, kind)), None)
        return f"{path} {advice}" if advice else f"{path}: {error.strerror or error}"
    if isinstance(error, ValueError | OSError | yaml.YAMLError):
        return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return None


def _debug_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `facenet` console script."""
    disable_telemetry()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as error:
        message = user_message(error)
        if message is None:
            raise
        if _debug_requested(args):
            traceback.print_exc()
        print(f"facenet {args.command}: error: {message}", file=sys.stderr)
        return 2
