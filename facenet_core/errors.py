"""The one exception type for mistakes the user can fix: the CLI prints it as one line, exit code 2."""

from __future__ import annotations

import os
from pathlib import Path


class UserError(ValueError):
    """Bad input, named: the message says which file or parameter and what to do about it."""


def read_user_text(path: str | os.PathLike, *, what: str) -> str:
    """The text of a file the user gave; UserError naming it and the first bad byte when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(
            f"{what} {path}: line {line} (byte {error.start}) is not UTF-8 text: save the file as UTF-8"
        ) from None
