"""The one exception type for mistakes the user can fix: the CLI prints it as one line, exit code 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input, named: the message says which file or parameter and what to do about it."""
