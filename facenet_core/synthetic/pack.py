"""LFW View 2 pairs over generated identities, and a byte-reproducible tar.gz of a file tree."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Sequence
from math import comb
from pathlib import Path

import numpy as np

from facenet_core.fileio import atomic_path

Pair = tuple[str, int, str, int]


def _fold_groups(identities: Sequence[str], num_folds: int) -> tuple[list[list[str]], bool]:
    """People per fold: disjoint across folds (as LFW) when every fold can get two, else all of them."""
    if len(identities) >= 2 * num_folds:
        return [list(identities[k::num_folds]) for k in range(num_folds)], True
    return [list(identities)] * num_folds, False


def _check_capacity(groups: list[list[str]], disjoint: bool, images: int, pairs_per_fold: int) -> None:
    """ValueError when the people and pictures cannot give that many distinct pairs."""
    people = min(len(g) for g in groups)
    needed = pairs_per_fold if disjoint else pairs_per_fold * len(groups)
    same, different = people * comb(images, 2), comb(people, 2) * images**2
    if needed > min(same, different):
        raise ValueError(
            f"pairs_per_fold={pairs_per_fold} x {len(groups)} folds needs more distinct pairs than "
            f"{people} people x {images} images give ({min(same, different)} per kind"
            f"{' and fold' if disjoint else ''}); lower pairs_per_fold or add eval identities or images"
        )


def lfw_pairs(
    identities: Sequence[str], images_per_identity: int, *, num_folds: int, pairs_per_fold: int, seed: int
) -> list[list[Pair]]:
    """Per fold, `pairs_per_fold` same pairs then as many different ones; image numbers 1-based.

    No pair appears twice in the whole file. Same pairs are (name, i, name, j) with i < j;
    different pairs name the alphabetically first person first.
    """
    if len(identities) < 2:
        raise ValueError(f"num_eval_identities must be at least 2 for different pairs, got {len(identities)}")
    if images_per_identity < 2:
        raise ValueError(f"images_per_identity must be at least 2 for same pairs, got {images_per_identity}")
    groups, disjoint = _fold_groups(sorted(identities), num_folds)
    _check_capacity(groups, disjoint, images_per_identity, pairs_per_fold)
    rng = np.random.default_rng([seed, 2])
    used: set[Pair] = set()
    folds = []
    for group in groups:
        same = [
            (name, i, name, j)
            for name in group
            for i in range(1, images_per_identity + 1)
            for j in range(i + 1, images_per_identity + 1)
            if (name, i, name, j) not in used
        ]
        chosen_same = [same[k] for k in rng.choice(len(same), pairs_per_fold, replace=False)]
        chosen_diff: list[Pair] = []
        while len(chosen_diff) < pairs_per_fold:
            a, b = sorted(rng.choice(len(group), 2, replace=False))
            i, j = (int(x) for x in rng.integers(1, images_per_identity + 1, 2))
            pair = (group[a], i, group[b], j)
            if pair not in used and pair not in chosen_diff:
                chosen_diff.append(pair)
        used.update(chosen_same)
        used.update(chosen_diff)
        folds.append(sorted(chosen_same) + sorted(chosen_diff))
    return folds


def format_pairs(folds: list[list[Pair]]) -> str:
    """LFW pairs.txt text: header 'folds<TAB>n', then per fold n same and n different lines."""
    lines = [f"{len(folds)}\t{len(folds[0]) // 2}"]
    for fold in folds:
        for name1, i, name2, j in fold:
            lines.append(f"{name1}\t{i}\t{j}" if name1 == name2 else f"{name1}\t{i}\t{name2}\t{j}")
    return "\n".join(lines) + "\n"


def _tar_info(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0, 0, 0, "", ""
    info.type, info.mode = (tarfile.DIRTYPE, 0o755) if directory else (tarfile.REGTYPE, 0o644)
    return info


def write_reproducible_targz(archive: str | os.PathLike, root: Path, files: Sequence[Path]) -> Path:
    """Pack `files` (under `root`) with their parent folders into `archive`, atomically.

    Entries are sorted, owners and times zeroed and the gzip header carries no name or time,
    so the same files always give the same archive bytes (and checksum).
    """
    relative = sorted(Path(f).relative_to(root).as_posix() for f in files)
    folders = sorted({parent.as_posix() for rel in relative for parent in Path(rel).parents if parent != Path(".")})
    entries = sorted([(d, True) for d in folders] + [(f, False) for f in relative])
    with atomic_path(archive) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, directory in entries:
                    if directory:
                        tar.addfile(_tar_info(name, directory=True))
                    else:
                        data = (root / name).read_bytes()
                        tar.addfile(_tar_info(name, size=len(data)), io.BytesIO(data))
    return Path(archive)
