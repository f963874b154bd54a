"""The identity folders of a dataset tree: one listing rule for the manifest scan and the crop stage."""

from __future__ import annotations

import os
from pathlib import Path


def _is_folder(entry: os.DirEntry, include_unreadable: bool) -> bool:
    try:
        return entry.is_dir()  # follows links; False for a broken one
    except OSError:
        return include_unreadable


def list_identities(root: str | os.PathLike, include_unreadable: bool = False) -> list[str]:
    """Names of the identity folders directly under `root`, sorted by name.

    An identity folder is a folder or a link to one whose name does not start with "." (so .shards,
    .git and the like are never identities). Names that are not valid UTF-8 are listed (as os.scandir
    gives them, undecodable bytes escaped): the caller decides how to report them. An entry whose
    type cannot be read (a symbolic link loop) is listed only with `include_unreadable`, for a caller
    that records why it is skipped. Raises FileNotFoundError when `root` is not a folder.
    """
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{os.fspath(root)} is not a folder of identity folders")
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and _is_folder(e, include_unreadable))
