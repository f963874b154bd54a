"""Scan identity folders: list image files and probe each one (header only, or a full decode).

Runs inside worker processes, one chunk of identity folders per task, so a 17M-file dataset
never ships its file names through the pool twice.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from facenet_core.fileio import is_utf8_name, printable_name
from facenet_core.images import is_image_name

DIGEST_SIZE = 16


@dataclass
class IdentityScan:
    """What one identity folder holds: usable images (sorted by name) and rejected files."""

    identity: str
    paths: list[str] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0
    readable: bool = True


def unreadable_reason(error: OSError) -> str:
    """The rejects-table reason for an entry the scan cannot open."""
    if error.errno == errno.ELOOP:
        return "symlink loop: too many levels of symbolic links"
    return f"unreadable: {type(error).__name__}: {error.strerror or error}"


def _probe(data_or_path: bytes | str, validate: bool) -> tuple[int, int]:
    """(width, height); a full decode when validating, otherwise the header alone."""
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(source) as image:
        if validate:
            image.load()
        return image.size


def _scan_file(entry: os.DirEntry, validate: bool, dedupe: bool) -> tuple[int, int, int, bytes]:
    size = entry.stat().st_size
    if size == 0:
        raise OSError("empty file")
    if validate or dedupe:
        data = Path(entry.path).read_bytes()
        digest = hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest() if dedupe else b""
        width, height = _probe(data, validate)
    else:
        digest = b""
        width, height = _probe(entry.path, validate)
    return width, height, size, digest


def scan_identity(root: str, identity: str, validate: bool, dedupe: bool) -> IdentityScan:
    """Probe every image file of `root/identity`; unreadable ones become rejects, never errors."""
    result = IdentityScan(identity)
    try:
        with os.scandir(os.path.join(root, identity)) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as error:
        result.rejects.append((f"{printable_name(identity)}/", unreadable_reason(error)))
        result.readable = False
        return result
    for entry in entries:
        relative = f"{identity}/{entry.name}"
        if not is_image_name(entry.name):
            result.ignored += 1
            continue
        try:
            is_file = entry.is_file()
        except OSError as error:
            result.rejects.append((printable_name(relative), unreadable_reason(error)))
            continue
        if not is_file:
            result.ignored += 1
            continue
        if not is_utf8_name(relative):
            result.rejects.append((printable_name(relative), "file name is not valid UTF-8"))
            continue
        try:
            width, height, size, digest = _scan_file(entry, validate, dedupe)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            result.rejects.append((relative, f"unreadable: {type(error).__name__}: {error}"))
            continue
        result.paths.append(relative)
        result.widths.append(width)
        result.heights.append(height)
        result.sizes.append(size)
        result.digests.append(digest)
    return result


def scan_chunk(root: str, identities: list[str], validate: bool, dedupe: bool) -> list[IdentityScan]:
    """scan_identity over a chunk of folders (the unit of work of the process pool)."""
    return [scan_identity(root, identity, validate, dedupe) for identity in identities]
