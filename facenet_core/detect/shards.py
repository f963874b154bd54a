"""Identity folders grouped into shards: the unit the crop stage maps over threads or Dask workers."""

from __future__ import annotations

import errno
import logging
import stat
from pathlib import Path

from facenet_core.fileio import is_utf8_name, printable_name, sha256_json
from facenet_core.identities import list_identities
from facenet_core.images import is_image_name

log = logging.getLogger(__name__)

NOT_UTF8_FILE = "file name is not valid UTF-8"
NOT_UTF8_FOLDER = "identity folder name is not valid UTF-8"


def input_folder(input_root: str | Path) -> Path:
    """`input_root` as a Path, or FileNotFoundError naming it when it is not a folder."""
    root = Path(input_root)
    if not root.is_dir():
        raise FileNotFoundError(f"crop input folder {root} does not exist: give the folder of identity folders")
    return root


def list_shards(input_root: str | Path, shard_size: int) -> list[list[str]]:
    """Identity names in consecutive groups of `shard_size`, in sorted order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    names = list_identities(input_folder(input_root))
    skipped = [name for name in names if not is_utf8_name(name)]
    if skipped:
        log.warning(
            "%s: %d identity folders skipped, their names are not valid UTF-8: %s",
            input_root,
            len(skipped),
            ", ".join(printable_name(name) for name in skipped),
        )
    names = [name for name in names if is_utf8_name(name)]
    return [names[i : i + shard_size] for i in range(0, len(names), shard_size)]


def _unreadable_link(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if path.is_symlink() and error.errno == errno.ENOENT:
        return "broken symbolic link (its target does not exist)"
    return f"cannot be read: {error.strerror}"


def _entries(identity_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files (regular files, or links to one) of a folder, and the entries named like images
    that cannot be read as files (symlink loops, broken links, FIFOs, ...) with the reason."""
    if not identity_dir.is_dir():
        return [], []
    files, unusable = [], []
    for path in sorted(identity_dir.iterdir(), key=lambda p: p.name):
        if not is_image_name(path.name):
            continue
        try:
            mode = path.stat().st_mode
        except OSError as error:
            unusable.append((path, _unreadable_link(path, error)))
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        elif not stat.S_ISDIR(mode):
            unusable.append((path, "not a regular file"))
    return files, unusable


def image_files(identity_dir: Path) -> list[Path]:
    """Image files directly inside one identity folder, sorted by name."""
    return _entries(identity_dir)[0]


def rejected_folders(input_root: str | Path) -> list[tuple[str, str]]:
    """(source, reason) of what no shard takes: the images inside identity folders whose names are
    not valid UTF-8 (printable form), and folder links that cannot be followed (`<name>/`)."""
    root = input_folder(input_root)
    rejected = []
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        name = path.name
        if name.startswith("."):
            continue
        if path.is_symlink() and not path.exists():
            try:
                path.stat()
            except OSError as error:
                rejected.append((f"{printable_name(name)}/", _unreadable_link(path, error)))
            continue
        if path.is_dir() and not is_utf8_name(name):
            files, unusable = _entries(path)
            images = sorted([f.name for f in files] + [p.name for p, _ in unusable])
            rejected += [(printable_name(f"{name}/{image}"), NOT_UTF8_FOLDER) for image in images]
    return rejected


def shard_id(identities: list[str]) -> str:
    """Stable short id of a shard: a hash of its sorted identity names."""
    return sha256_json(sorted(identities))[:16]


def output_names(files: list[Path]) -> list[str]:
    """PNG names for `files` (sorted): `<stem>.png`, or `<name>.png` when an earlier file took the stem."""
    taken: set[str] = set()
    names = []
    for path in files:
        name = f"{path.stem}.png"
        if name in taken:
            name = f"{path.name}.png"
        counter = 1
        while name in taken:
            name = f"{path.name}.{counter}.png"
            counter += 1
        taken.add(name)
        names.append(name)
    return names


def plan(input_root: Path, identities: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(source, output) relative POSIX paths of every image of the shard, and (source, reason) of the
    entries it cannot crop: names not valid UTF-8 (printable form), symlink loops, broken links."""
    jobs, rejected = [], []
    for identity in sorted(identities):
        files, unusable = _entries(input_root / identity)
        rejected += [(printable_name(f"{identity}/{p.name}"), reason) for p, reason in unusable]
        rejected += [(printable_name(f"{identity}/{f.name}"), NOT_UTF8_FILE) for f in files if not is_utf8_name(f.name)]
        files = [f for f in files if is_utf8_name(f.name)]
        jobs += [(f"{identity}/{f.name}", f"{identity}/{n}") for f, n in zip(files, output_names(files), strict=True)]
    return jobs, sorted(rejected)


def shard_fingerprint(input_root: str | Path, identities: list[str]) -> str:
    """Content fingerprint of a shard's inputs: relative paths, sizes and modification times (and
    the names of the entries it cannot read, so a new symlink loop gets its row)."""
    root = Path(input_root)
    entries = []
    for identity in sorted(identities):
        files, unusable = _entries(root / identity)
        for path in files:
            info = path.stat()
            entries.append([printable_name(f"{identity}/{path.name}"), info.st_size, info.st_mtime_ns])
        entries += [[printable_name(f"{identity}/{path.name}"), reason] for path, reason in unusable]
    return sha256_json(entries)
