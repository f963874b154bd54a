"""Safe, idempotent, merging extraction of tar, tar.gz/tgz/bz2/xz and zip archives, split archives included.

Before anything is written, the archive's total extracted size is checked against the free disk
space and against a bound on its ratio to the archive's size (default 100:1, at least 1 MiB), and
every entry is checked: absolute names, ".." components, unsafe names, links that point outside
the target, device files and fifos are refused with an error naming the archive and the entry.

Each archive is extracted into its own staging folder inside the target, then merged in: a path
that does not exist yet is moved in, a folder that exists is merged into, a file that exists is
kept when it holds the same bytes or when this archive wrote it before (its listing says so),
and replaced by the archive's version only when the archive itself changed since; any other clash
stops the extraction before anything moves, so no archive ever deletes or overwrites what it did
not write. The listing `.extracted.<archive>.files.gz` (every file and link placed) is written
before the move, the marker `.extracted.<archive>.json` last; an archive counts as extracted only
while its marker matches and every listed file is still there (a rerun restores missing ones).
"""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PureWindowsPath

from filelock import FileLock
from tqdm import tqdm

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path, atomic_write_json
from facenet_core.safepath import UnsafeNameError, safe_name, safe_relative

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MARKER_VERSION = 2
DEFAULT_MAX_RATIO = 100.0
# Archives extracting to less than this are never refused for their ratio (tiny text files compress well).
RATIO_FLOOR_BYTES = 1 << 20
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


class UnsafeArchiveError(UserError):
    """An archive entry that would write outside the target or create a device file."""


class ArchiveLimitError(UserError):
    """An archive that would extract to more than the free disk space or the allowed ratio."""


class ExtractConflictError(UserError):
    """An archive whose entries would replace files it did not write."""


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
    if head.startswith(COMPRESSED_MAGIC) or head[257:262] == b"ustar":
        return "tar"
    return None


class _Checked:
    """Names and folders already proven safe during one extraction: a folder name repeats for each
    of its files, and proving it once keeps the check cheap on archives of millions of entries."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.folders: set[str] = set()

    def confine_folder(self, into: Path, name: str, label: str) -> None:
        """Prove (resolving symlinks) that the folder of entry `name` stays inside `into`."""
        folder = name.rpartition("/")[0]
        if folder and folder not in self.folders:
            safe_relative(into, folder, what=f"{label}: folder")
            self.folders.add(folder)


def _member_path(archive: str, name: str, checked: _Checked) -> str | None:
    """The entry's normalised relative POSIX path (None for the archive's root folder `./`), or UnsafeArchiveError."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or PureWindowsPath(name).drive:
        raise UnsafeArchiveError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: entry {name!r} contains '..'; refusing to extract")
    try:
        for part in parts:
            if part not in checked.names:
                checked.names.add(safe_name(part, what="component"))
    except UnsafeNameError as error:
        raise UnsafeArchiveError(
            f"{archive}: entry {name!r} is not a safe path ({error}); refusing to extract"
        ) from None
    return "/".join(parts) or None


def _check_link(archive: str, name: str, target: str, relative_to_entry: bool) -> None:
    """Refuse a link whose target, resolved lexically, leaves the extraction folder."""
    unified = target.replace("\\", "/")
    depth = 0
    base = name.split("/")[:-1] if relative_to_entry else []
    for part in [*base, *unified.split("/")]:
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            break
    if unified.startswith("/") or PureWindowsPath(target).drive or depth < 0 or "\x00" in target:
        raise UnsafeArchiveError(f"{archive}: link {name!r} -> {target!r} points outside the target; refusing")


def _check_tar_member(archive: str, member: tarfile.TarInfo, checked: _Checked) -> str | None:
    name = _member_path(archive, member.name, checked)
    if name is None:
        return None
    if member.issym():
        _check_link(archive, name, member.linkname, relative_to_entry=True)
    elif member.islnk():
        _check_link(archive, name, member.linkname, relative_to_entry=False)
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: entry {member.name!r} is a device file or fifo; refusing to extract")
    return name


def _tar_members(parts: Sequence[Path]) -> Iterator[tarfile.TarInfo]:
    """Every member header, without extracting (seeking over the data of a single plain tar)."""
    with open(parts[0], "rb") as handle:
        compressed = handle.read(6).startswith(COMPRESSED_MAGIC)
    if len(parts) == 1 and not compressed:
        with tarfile.open(parts[0], "r:") as tar:
            yield from tar
        return
    with PartsReader(parts) as stream, tarfile.open(fileobj=io.BufferedReader(stream, CHUNK), mode="r|*") as tar:
        yield from tar


def _tar_size(parts: Sequence[Path], checked: _Checked) -> int:
    label = parts[0].name
    total = 0
    for member in _tar_members(parts):
        _check_tar_member(label, member, checked)
        total += member.size if member.isfile() else 0
    return total


def _zip_size(source: Path, label: str, checked: _Checked) -> int:
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        for info in infos:
            name = _member_path(label, info.filename, checked)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK and name is not None:
                _check_link(label, name, archive.read(info).decode("utf-8", "replace"), relative_to_entry=True)
            elif kind not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
                raise UnsafeArchiveError(f"{label}: entry {info.filename!r} is a device file or fifo; refusing")
        return sum(info.file_size for info in infos)


def check_limits(label: str, archive_bytes: int, total: int, target: Path, max_ratio: float) -> None:
    """Refuse an extraction larger than the free space at `target` or than `max_ratio` x the archive."""
    free = shutil.disk_usage(target).free
    if total > free:
        raise ArchiveLimitError(
            f"{label}: extracts to {total:,} bytes but {target} has only {free:,} bytes free; "
            "free some space or put the workspace on a larger disk"
        )
    allowed = max(max_ratio * archive_bytes, RATIO_FLOOR_BYTES)
    if total > allowed:
        raise ArchiveLimitError(
            f"{label}: extracts to {total:,} bytes, {total / max(archive_bytes, 1):.0f} times its {archive_bytes:,} "
            f"bytes (bound {max_ratio:g}:1), refused as a possible archive bomb; if you trust it, set "
            "max_extract_ratio in its catalogue entry or dataset config"
        )


def _extract_tar(parts: Sequence[Path], into: Path, progress: bool, checked: _Checked) -> tuple[int, str]:
    label = parts[0].name
    count = 0
    with PartsReader(parts, progress) as stream:
        buffered = io.BufferedReader(stream, CHUNK)
        with tarfile.open(fileobj=buffered, mode="r|*") as tar:
            for member in tar:
                name = _check_tar_member(label, member, checked)
                if name is None:
                    continue
                checked.confine_folder(into, name, label)
                tar.extract(member, into, filter="data")  # the data filter resolves each member too
                count += 1
        while buffered.read(CHUNK):
            pass
        return count, stream.sha256.hexdigest()


def _joined_zip(parts: Sequence[Path], into: Path, progress: bool) -> Path:
    """The zip to read: the archive itself, or its parts joined into one file beside the staging folder."""
    if len(parts) == 1:
        return parts[0]
    joined = into.with_name(into.name + ".zip")
    with PartsReader(parts, progress) as stream, open(joined, "wb") as out:
        shutil.copyfileobj(stream, out, CHUNK)
    return joined


def _extract_zip(source: Path, label: str, into: Path, progress: bool, checked: _Checked) -> tuple[int, str]:
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    count = 0
    with zipfile.ZipFile(source) as archive:
        for info in tqdm(archive.infolist(), desc=label, unit="file", disable=not progress):
            name = _member_path(label, info.filename, checked)
            if name is None:
                continue
            checked.confine_folder(into, name, label)
            archive.extract(info, into)
            count += 1
    return count, digest.hexdigest()


def _identity(parts: Sequence[Path]) -> list[dict]:
    return [{"name": p.name, "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in parts]


def marker_path(target: Path, parts: Sequence[Path]) -> Path:
    """The completion marker of an archive (named after its first part) inside `target`."""
    return target / f".extracted.{parts[0].name}.json"


def listing_path(target: Path, parts: Sequence[Path]) -> Path:
    """The list of files an archive placed in `target` (one JSON string per line, gzip)."""
    return target / f".extracted.{parts[0].name}.files.gz"


def _read_listing(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with gzip.open(path, "rt", encoding="ascii") as handle:
        for line in handle:
            yield json.loads(line)


def _write_listing(path: Path, files: list[str]) -> None:
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="ascii") as handle:
        for name in files:
            handle.write(json.dumps(name) + "\n")


def _missing(target: Path, listing: Path) -> list[str]:
    """Listed files (or links) absent from `target`."""
    return [name for name in _read_listing(listing) if not os.path.lexists(target / name)]


def missing_entries(target: str | os.PathLike) -> list[str]:
    """Files the archives extracted into `target` placed there and that are gone now."""
    target = Path(target)
    missing = []
    for listing in sorted(target.glob(".extracted.*.files.gz")):
        missing += _missing(target, listing)
    return missing


def is_extracted(archive: Path | Sequence[Path], target: str | os.PathLike) -> bool:
    """True when `target` holds a completion marker for exactly these archive files and every file
    the archive placed is still there."""
    parts = [archive] if isinstance(archive, Path) else list(archive)
    target = Path(target)
    marker = marker_path(target, parts)
    if not marker.is_file():
        return False
    recorded = json.loads(marker.read_text())
    if recorded.get("version") != MARKER_VERSION or recorded.get("archives") != _identity(parts):
        return False
    missing = _missing(target, listing_path(target, parts))
    if missing:
        log.warning(
            "%s: %d extracted files are gone from %s (%s ...): extracting again",
            parts[0].name,
            len(missing),
            target,
            missing[0],
        )
    return not missing


def _staged_files(staging: Path) -> list[str]:
    """Every file and symlink under `staging`, as relative POSIX paths."""
    files = []
    for folder, dirnames, filenames in os.walk(staging):
        relative = Path(folder).relative_to(staging)
        for name in filenames + [d for d in dirnames if (Path(folder) / d).is_symlink()]:
            files.append((relative / name).as_posix())
    return sorted(files)


def _same_bytes(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
    return filecmp.cmp(a, b, shallow=False)


def _plan_merge(
    staging: Path, target: Path, owned: set[str], replace_owned: bool
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(moves, conflicts): what to move from `staging` into `target`, and the paths that clash with
    files this archive did not write."""
    moves: list[tuple[Path, Path]] = []
    conflicts: list[str] = []
    pending = [(staging, target)]
    while pending:
        source_dir, dest_dir = pending.pop()
        for entry in sorted(os.scandir(source_dir), key=lambda e: e.name):
            source, dest = Path(entry.path), dest_dir / entry.name
            relative = source.relative_to(staging).as_posix()
            dest_is_dir = dest.is_dir() and not dest.is_symlink()
            if not os.path.lexists(dest):
                moves.append((source, dest))
            elif entry.is_dir(follow_symlinks=False):
                if dest_is_dir:
                    pending.append((source, dest))
                else:
                    conflicts.append(relative)
            elif dest_is_dir:
                conflicts.append(relative)
            elif relative in owned:
                if replace_owned:
                    moves.append((source, dest))
            elif not _same_bytes(source, dest):
                conflicts.append(relative)
    return moves, conflicts


def _merge(staging: Path, target: Path, label: str, listing: Path, files: list[str], changed: bool) -> None:
    """Move the staged tree into `target` (see the module docstring); the listing is written first.

    `changed`: the archive differs from the one last extracted here, so its new versions of the
    files it wrote replace the old ones.
    """
    owned = set(_read_listing(listing))
    moves, conflicts = _plan_merge(staging, target, owned, changed)
    if conflicts:
        shown = ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise ExtractConflictError(
            f"{label}: {len(conflicts)} entries would replace files in {target} that this archive did not write "
            f"({shown}); move them out of the way (or delete {target} to start over) and run again"
        )
    stale = owned - set(files)
    _write_listing(listing, files)
    for source, dest in moves:
        os.replace(source, dest)
    if stale:
        log.warning(
            "%s: %d files from an earlier version of this archive are not in it any more; left in %s (%s ...)",
            label,
            len(stale),
            target,
            sorted(stale)[0],
        )


def extract(
    archive: str | os.PathLike | Sequence[str | os.PathLike],
    target: str | os.PathLike,
    *,
    progress: bool = True,
    max_ratio: float | None = None,
) -> Path:
    """Extract an archive (or the concatenation of its split parts, in order) into `target`, merging.

    Idempotent: returns at once when the completion marker matches the archive files and every
    file it placed is still there. `max_ratio` (default 100) bounds extracted size / archive size.
    """
    parts = [Path(archive)] if isinstance(archive, str | os.PathLike) else [Path(p) for p in archive]
    if not parts:
        raise ValueError("extract() needs at least one archive file")
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"archive {part} not found")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(target / ".extract.lock"):
        if is_extracted(parts, target):
            return target
        _extract_locked(parts, target, progress, DEFAULT_MAX_RATIO if max_ratio is None else max_ratio)
    return target


def _extract_locked(parts: list[Path], target: Path, progress: bool, max_ratio: float) -> None:
    label = parts[0].name
    kind = archive_kind(parts[0])
    if kind is None:
        raise UserError(f"{parts[0]} is not a tar, tar.gz/bz2/xz or zip archive (by its first bytes)")
    marker = marker_path(target, parts)
    previous = json.loads(marker.read_text()).get("archives") if marker.is_file() else None
    changed = previous is not None and previous != _identity(parts)
    staging = target / f".partial.{label}"
    shutil.rmtree(staging, ignore_errors=True)
    joined: Path | None = None
    checked = _Checked()
    try:
        if kind == "tar":
            total = _tar_size(parts, checked)
        else:
            joined = _joined_zip(parts, staging, progress)
            total = _zip_size(joined, label, checked)
        check_limits(label, sum(p.stat().st_size for p in parts), total, target, max_ratio)
        staging.mkdir()
        if kind == "tar":
            count, digest = _extract_tar(parts, staging, progress, checked)
        else:
            count, digest = _extract_zip(joined, label, staging, progress, checked)
        files = _staged_files(staging)
        _merge(staging, target, label, listing_path(target, parts), files, changed)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as error:
        raise UserError(f"{parts[0]}: damaged or truncated archive ({error}); delete it and download again") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if joined is not None and joined != parts[0]:
            joined.unlink(missing_ok=True)
    record = {"version": MARKER_VERSION, "archives": _identity(parts), "sha256": digest, "entries": count}
    atomic_write_json(marker, record)
