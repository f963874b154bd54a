"""Untrusted names into paths that provably stay inside their parent folder.

Every name that comes from outside the program (a URL's last segment, a catalogue `filename`,
dataset, evaluation-set and run names, RecordIO labels used as folder names, archive members)
goes through here before it is joined to a folder.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from facenet_core.errors import UserError

MAX_NAME_BYTES = 255


class UnsafeNameError(UserError):
    """A name that would leave its folder, or cannot be a file name on this system."""


def safe_name(name: str, *, what: str) -> str:
    """`name` unchanged if it is one plain path component; otherwise UnsafeNameError naming `what`."""
    problem = _name_problem(name)
    if problem:
        raise UnsafeNameError(f"{what} {name!r} is not a safe file name ({problem}): use a plain name")
    return name


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "empty"
    if "\x00" in name:
        return "contains NUL"
    if name in (".", ".."):
        return "refers to a folder"
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "contains a path separator"
    if PureWindowsPath(name).drive or PurePosixPath(name).is_absolute():
        return "is an absolute path"
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def safe_child(parent: str | os.PathLike, name: str, *, what: str) -> Path:
    """`parent / name` for one untrusted component, checked to resolve inside `parent`."""
    child = Path(parent) / safe_name(name, what=what)
    return confine(parent, child, what=what)


def safe_relative(parent: str | os.PathLike, relative: str, *, what: str) -> Path:
    """`parent / relative` for an untrusted relative path (archive member): every component checked."""
    parts = [part for part in relative.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts:
        raise UnsafeNameError(f"{what} {relative!r} is not a safe relative path (empty)")
    if relative.startswith(("/", "\\")) or PureWindowsPath(relative).drive:
        raise UnsafeNameError(f"{what} {relative!r} is not a safe relative path (absolute)")
    for part in parts:
        safe_name(part, what=what)
    return confine(parent, Path(parent).joinpath(*parts), what=what)


def confine(parent: str | os.PathLike, path: str | os.PathLike, *, what: str) -> Path:
    """`path` if it resolves (symlinks followed) inside `parent`, else UnsafeNameError."""
    root = Path(parent).resolve()
    resolved = Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafeNameError(f"{what} {str(path)!r} resolves outside {root}: refused")
    return Path(path)
