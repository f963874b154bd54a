"""Safe, idempotent extraction of tar, tar.gz/tgz/bz2/xz and zip archives, split archives included.

Every entry is checked before it is written: absolute names, ".." components, links that point
outside the target, device files and fifos are refused with an error naming the archive and the
entry. An archive is extracted into a temporary folder inside the target and its top-level entries
are moved into place; a marker `.extracted.<archive>.json` written last records that the work is
complete, so a killed extraction (no marker) is redone from scratch, never trusted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from facenet_core.fileio import atomic_write_json

CHUNK = 1 << 20
MARKER_VERSION = 1


class UnsafeArchiveError(ValueError):
    """An archive entry that would write outside the target or create a device file."""


class PartsReader(io.RawIOBase):
    """The concatenation of several files as one read-only stream, hashed and counted as it is read."""

    def __init__(self, paths: Sequence[Path], progress: bool = False) -> None:
        self._paths = list(paths)
        self._index = 0
        self._handle = open(self._paths[0], "rb")
        self.sha256 = hashlib.sha256()
        total = sum(p.stat().st_size for p in self._paths)
        self._bar = tqdm(total=total, unit="B", unit_scale=True, desc=self._paths[0].name, disable=not progress)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            count = self._handle.readinto(buffer)
            if count:
                self.sha256.update(memoryview(buffer)[:count])
                self._bar.update(count)
                return count
            if self._index + 1 >= len(self._paths):
                return 0
            self._handle.close()
            self._index += 1
            self._handle = open(self._paths[self._index], "rb")

    def close(self) -> None:
        self._handle.close()
        self._bar.close()
        super().close()


def archive_kind(path: Path) -> str | None:
    """'tar' (plain or compressed) or 'zip' from the file's first bytes; None for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    return None


def _check_name(archive: str, name: str) -> str:
    """The entry's normalised relative POSIX path, or UnsafeArchiveError."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    if ".." in unified.split("/"):
        raise UnsafeArchiveError(f"{archive}: entry {name!r} contains '..'; refusing to extract")
    return posixpath.normpath(unified)


def _check_link(archive: str, name: str, target: str, relative_to_entry: bool) -> None:
    """Refuse a link whose target, resolved lexically, leaves the extraction folder."""
    unified = target.replace("\\", "/")
    base = posixpath.dirname(name) if relative_to_entry else ""
    resolved = posixpath.normpath(posixpath.join(base, unified))
    if unified.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: link {name!r} -> {target!r} points outside the target; refusing")


def _check_tar_member(archive: str, member: tarfile.TarInfo) -> None:
    name = _check_name(archive, member.name)
    if member.issym():
        _check_link(archive, name, member.linkname, relative_to_entry=True)
    elif member.islnk():
        _check_link(archive, name, member.linkname, relative_to_entry=False)
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: entry {member.name!r} is a device file or fifo; refusing to extract")


def _extract_tar(parts: Sequence[Path], into: Path, progress: bool) -> tuple[int, str]:
    label = parts[0].name
    count = 0
    with PartsReader(parts, progress) as stream:
        buffered = io.BufferedReader(stream, CHUNK)
        with tarfile.open(fileobj=buffered, mode="r|*") as tar:
            for member in tar:
                _check_tar_member(label, member)
                tar.extract(member, into, filter="data")
                count += 1
        while buffered.read(CHUNK):
            pass
        return count, stream.sha256.hexdigest()


def _extract_zip(parts: Sequence[Path], into: Path, progress: bool) -> tuple[int, str]:
    label = parts[0].name
    source = parts[0]
    if len(parts) > 1:
        source = into / ".joined.zip"
        with PartsReader(parts, progress) as stream, open(source, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        for info in infos:
            name = _check_name(label, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                _check_link(label, name, archive.read(info).decode("utf-8", "replace"), relative_to_entry=True)
            elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(f"{label}: entry {info.filename!r} is a device file or fifo; refusing")
        for info in tqdm(infos, desc=label, unit="file", disable=not progress):
            archive.extract(info, into)
    if source != parts[0]:
        source.unlink()
    return len(infos), digest.hexdigest()


def _identity(parts: Sequence[Path]) -> list[dict]:
    return [{"name": p.name, "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in parts]


def marker_path(target: Path, parts: Sequence[Path]) -> Path:
    """The completion marker of an archive (named after its first part) inside `target`."""
    return target / f".extracted.{parts[0].name}.json"


def is_extracted(archive: Path | Sequence[Path], target: str | os.PathLike) -> bool:
    """True when `target` holds a completion marker for exactly these archive files."""
    parts = [archive] if isinstance(archive, Path) else list(archive)
    marker = marker_path(Path(target), parts)
    if not marker.is_file():
        return False
    recorded = json.loads(marker.read_text())
    return recorded.get("version") == MARKER_VERSION and recorded.get("archives") == _identity(parts)


def extract(
    archive: str | os.PathLike | Sequence[str | os.PathLike], target: str | os.PathLike, *, progress: bool = True
) -> Path:
    """Extract an archive (or the concatenation of its split parts, in order) into `target`.

    Idempotent: returns at once when the completion marker matches the archive files. Entries
    from an earlier, killed run of the same archive are replaced.
    """
    parts = [Path(archive)] if isinstance(archive, str | os.PathLike) else [Path(p) for p in archive]
    if not parts:
        raise ValueError("extract() needs at least one archive file")
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"archive {part} not found")
    target = Path(target)
    if is_extracted(parts, target):
        return target
    kind = archive_kind(parts[0])
    if kind is None:
        raise ValueError(f"{parts[0]} is not a tar, tar.gz/bz2/xz or zip archive (by its first bytes)")
    target.mkdir(parents=True, exist_ok=True)
    marker_path(target, parts).unlink(missing_ok=True)
    staging = target / f".partial.{parts[0].name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        count, digest = (_extract_tar if kind == "tar" else _extract_zip)(parts, staging, progress)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"{parts[0]}: damaged or truncated archive ({error}); delete it and download again") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for entry in sorted(staging.iterdir()):
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        os.replace(entry, destination)
    staging.rmdir()
    record = {"version": MARKER_VERSION, "archives": _identity(parts), "sha256": digest, "entries": count}
    atomic_write_json(marker_path(target, parts), record)
    return target
