"""The `facenet` command run in-process, as the hostile-input and command tests use it."""

from __future__ import annotations

import pytest

from flows.cli import main


def invoke(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`facenet ARGV` in-process: (exit code, stdout, stderr); argparse mistakes exit through SystemExit."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str) -> str:
    """The stripped stderr of a failed command, checked to be one line without a traceback."""
    err = err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err
