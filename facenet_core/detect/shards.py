"""Identity folders grouped into shards: the unit the crop stage maps over threads or Dask workers."""

from __future__ import annotations

import logging
from pathlib import Path

from facenet_core.detect.images import is_image_file
from facenet_core.fileio import is_utf8_name, printable_name, sha256_json

log = logging.getLogger(__name__)


def list_identities(input_root: str | Path) -> list[str]:
    """Sorted names of the identity folders under `input_root` (hidden folders ignored)."""
    root = Path(input_root)
    if not root.is_dir():
        raise FileNotFoundError(f"crop input folder {root} does not exist: give the folder of identity folders")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_shards(input_root: str | Path, shard_size: int) -> list[list[str]]:
    """Identity names in consecutive groups of `shard_size`, in sorted order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    names = list_identities(input_root)
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


def shard_id(identities: list[str]) -> str:
    """Stable short id of a shard: a hash of its sorted identity names."""
    return sha256_json(sorted(identities))[:16]


def image_files(identity_dir: Path) -> list[Path]:
    """Image files directly inside one identity folder, sorted by name."""
    if not identity_dir.is_dir():
        return []
    return sorted((p for p in identity_dir.iterdir() if p.is_file() and is_image_file(p)), key=lambda p: p.name)


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


def plan(input_root: Path, identities: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(source, output) relative POSIX paths of every image of the shard, and the relative paths of
    the images skipped because their names are not valid UTF-8 (printable form)."""
    jobs, skipped = [], []
    for identity in sorted(identities):
        files = image_files(input_root / identity)
        skipped += [printable_name(f"{identity}/{f.name}") for f in files if not is_utf8_name(f.name)]
        files = [f for f in files if is_utf8_name(f.name)]
        jobs += [(f"{identity}/{f.name}", f"{identity}/{n}") for f, n in zip(files, output_names(files), strict=True)]
    return jobs, skipped


def shard_fingerprint(input_root: str | Path, identities: list[str]) -> str:
    """Content fingerprint of a shard's inputs: relative paths, sizes and modification times."""
    root = Path(input_root)
    entries = []
    for identity in sorted(identities):
        for path in image_files(root / identity):
            stat = path.stat()
            entries.append([f"{identity}/{path.name}", stat.st_size, stat.st_mtime_ns])
    return sha256_json(entries)
