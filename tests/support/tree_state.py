"""Snapshots of folder trees, to prove a command changed nothing outside its target."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def tree_state(root: str | os.PathLike) -> dict[str, str]:
    """Relative path -> content sha256 (files), "dir" (folders) or "link:<target>" (symlinks), mode included."""
    root = Path(root)
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(folder) / name
            relative = os.fsdecode(path.relative_to(root))
            info = path.lstat()
            if path.is_symlink():
                state[relative] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                state[relative] = f"dir:{oct(info.st_mode)}"
            else:
                state[relative] = f"{hashlib.sha256(path.read_bytes()).hexdigest()}:{oct(info.st_mode)}"
    return state
