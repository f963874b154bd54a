"""Atomic writes and content hashes: nothing half-written is ever seen under its final name."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def remove_stale_temporaries(folder: str | os.PathLike, names: set[str] | Callable[[str], bool]) -> int:
    """Delete the temporaries (`.<name>.<random>.tmp`) an interrupted `atomic_path` left in `folder`
    for `names` (a set of target names, or a test of a target name).

    Call it only where no other process is writing those files. Returns how many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    wanted = names.__contains__ if isinstance(names, set) else names
    removed = 0
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") and name.endswith(".tmp") and wanted(name[1:].rsplit(".", 2)[0]):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def _new_temporary(target: Path) -> Path:
    """Create `.<name>.<random>.tmp` beside `target`, with the permissions the umask gives a new file.

    The kernel applies the umask to the 0666 asked for here; reading the umask would mean setting it,
    which changes it for a moment for every thread of the process.
    """
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it into place only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temporary(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented, key-sorted JSON to `target` atomically."""
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of `obj`'s canonical JSON form (sorted keys): a stable fingerprint of values."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_utf8_name(name: str) -> bool:
    """Whether a file name (as the OS gave it) is valid UTF-8: names that are not cannot go into tables."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """A file name safe to print, log or store, its invalid bytes shown as U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")
