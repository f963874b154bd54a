"""LFW pairs files: parsing (View 1 and View 2), the people filter and image resolution on disk.

A pair keeps its position in the file (`index`), so folds stay those of the full file when pairs
are filtered out or lost to missing images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet_core.errors import UserError, read_user_text
from facenet_core.images import is_image_name


@dataclass(frozen=True)
class Pairs:
    """The pairs of one file: names and image numbers of both sides, labels and file positions."""

    path: Path
    name1: list[str]
    num1: np.ndarray
    name2: list[str]
    num2: np.ndarray
    issame: np.ndarray
    index: np.ndarray
    total: int

    def __len__(self) -> int:
        return len(self.name1)

    def select(self, keep: np.ndarray) -> Pairs:
        """The pairs where the boolean mask `keep` is true, positions unchanged."""
        rows = np.flatnonzero(keep)
        return Pairs(
            path=self.path,
            name1=[self.name1[i] for i in rows],
            num1=self.num1[rows],
            name2=[self.name2[i] for i in rows],
            num2=self.num2[rows],
            issame=self.issame[rows],
            index=self.index[rows],
            total=self.total,
        )

    def folds(self, num_folds: int = 10) -> np.ndarray:
        """Fold of each pair when the full file is cut into `num_folds` contiguous folds.

        Fold sizes follow scikit-learn's KFold(shuffle=False), as the seed used: the first
        `total % num_folds` folds hold one pair more.
        """
        sizes = np.full(num_folds, self.total // num_folds, dtype=np.int64)
        sizes[: self.total % num_folds] += 1
        return np.searchsorted(np.cumsum(sizes), self.index, side="right").astype(np.int64)


@dataclass(frozen=True)
class ResolvedPairs:
    """Pairs whose two images exist: unique image paths and, per pair, indices into them."""

    pairs: Pairs
    images: list[Path]
    left: np.ndarray
    right: np.ndarray
    missing_images: list[str]
    missing_pairs: int


def _parse_int(token: str, path: Path, lineno: int, what: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise UserError(f"{path}:{lineno}: {what} must be an integer, got {token!r}") from None
    if value < 0:
        raise UserError(f"{path}:{lineno}: {what} must not be negative, got {value}")
    return value


def _expected_pairs(header: list[str], path: Path) -> int:
    if len(header) == 1:
        return 2 * _parse_int(header[0], path, 1, "header (pairs per class)")
    if len(header) == 2:
        folds = _parse_int(header[0], path, 1, "header (number of folds)")
        per_class = _parse_int(header[1], path, 1, "header (pairs per class and fold)")
        return 2 * folds * per_class
    raise UserError(f"{path}:1: header must be 'n' or 'folds<TAB>n', got {' '.join(header)!r}")


def read_pairs(path: str | os.PathLike) -> Pairs:
    """Parse an LFW pairs file.

    The header is 'folds<TAB>n' (View 2 pairs.txt: folds of n same then n different pairs) or a
    single number n (View 1 pairsDevTrain/pairsDevTest.txt). Then one pair per line: 'name a b'
    (same person) or 'name1 a name2 b' (different people). Blank lines are ignored.

    Raises:
        FileNotFoundError: the file does not exist.
        UserError: text that is not UTF-8 or a malformed line (the message gives file and line
            number), or a pair count that disagrees with the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} not found (LFW's pairs.txt or pairsDevTest.txt)")
    text = read_user_text(path, what="pairs file")
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, fields) for n, fields in lines if fields]
    if not lines:
        raise UserError(f"{path}: empty pairs file")
    header_lineno, header = lines[0]
    if header_lineno != 1:
        raise UserError(f"{path}:1: the first line must be the header ('n' or 'folds<TAB>n')")
    expected = _expected_pairs(header, path)
    name1, num1, name2, num2, issame = [], [], [], [], []
    for lineno, fields in lines[1:]:
        if len(fields) == 3:
            name, a, b = fields
            name1.append(name)
            name2.append(name)
            num1.append(_parse_int(a, path, lineno, "image number"))
            num2.append(_parse_int(b, path, lineno, "image number"))
            issame.append(True)
        elif len(fields) == 4:
            name1.append(fields[0])
            num1.append(_parse_int(fields[1], path, lineno, "image number"))
            name2.append(fields[2])
            num2.append(_parse_int(fields[3], path, lineno, "image number"))
            issame.append(False)
        else:
            raise UserError(
                f"{path}:{lineno}: expected 'name a b' or 'name1 a name2 b', got {len(fields)} fields: "
                f"{' '.join(fields)!r}"
            )
    if len(issame) != expected:
        raise UserError(
            f"{path}: the header {' '.join(header)!r} announces {expected} pairs but the file has {len(issame)}"
        )
    return Pairs(
        path=path,
        name1=name1,
        num1=np.asarray(num1, dtype=np.int64),
        name2=name2,
        num2=np.asarray(num2, dtype=np.int64),
        issame=np.asarray(issame, dtype=bool),
        index=np.arange(len(issame), dtype=np.int64),
        total=len(issame),
    )


def read_people(path: str | os.PathLike) -> set[str]:
    """Names in an LFW people file (peopleDevTest.txt: a count, then 'name<TAB>nimages' lines).

    Lines holding a single number are counts (people.txt has one per fold) and are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"people file {path} not found (LFW's peopleDevTest.txt or people.txt)")
    people = set()
    for lineno, line in enumerate(read_user_text(path, what="people file").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 1:
            _parse_int(fields[0], path, lineno, "count line")
        elif len(fields) == 2:
            _parse_int(fields[1], path, lineno, "number of images")
            people.add(fields[0])
        else:
            raise UserError(f"{path}:{lineno}: expected 'name<TAB>nimages' or a count, got {line.strip()!r}")
    return people


def filter_people(pairs: Pairs, people: set[str]) -> Pairs:
    """The pairs whose people are all in `people`; each pair keeps its position (and fold)."""
    keep = np.array([a in people and b in people for a, b in zip(pairs.name1, pairs.name2, strict=True)], dtype=bool)
    return pairs.select(keep)


def _image_index(root: Path, person: str) -> dict[str, Path]:
    folder = root / person
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if is_image_name(entry.name) and not entry.name.startswith(".") and entry.stem not in found:
            found[entry.stem] = entry
    return found


def resolve_pairs(pairs: Pairs, root: str | os.PathLike) -> ResolvedPairs:
    """Find each pair's images as <root>/<person>/<person>_<nnnn>.<ext>, any ext of images.IMAGE_EXTENSIONS.

    Each image is listed once however many pairs use it. Pairs with a missing image are left out
    and counted; the missing image names are returned sorted. When one stem exists with several
    extensions the first in name order is used.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found (an LFW folder of <person>/ folders, raw or cropped)")
    indexes: dict[str, dict[str, Path]] = {}
    image_ids: dict[Path, int] = {}
    missing: set[str] = set()
    left, right, keep = [], [], []
    for name_a, a, name_b, b in zip(pairs.name1, pairs.num1, pairs.name2, pairs.num2, strict=True):
        found = []
        for person, number in ((name_a, a), (name_b, b)):
            if person not in indexes:
                indexes[person] = _image_index(root, person)
            stem = f"{person}_{int(number):04d}"
            image = indexes[person].get(stem)
            if image is None:
                missing.add(f"{person}/{stem}")
            found.append(image)
        ok = found[0] is not None and found[1] is not None
        keep.append(ok)
        if ok:
            left.append(image_ids.setdefault(found[0], len(image_ids)))
            right.append(image_ids.setdefault(found[1], len(image_ids)))
    keep_mask = np.asarray(keep, dtype=bool)
    used = sorted(image_ids, key=image_ids.__getitem__)
    return ResolvedPairs(
        pairs=pairs.select(keep_mask),
        images=used,
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        missing_images=sorted(missing),
        missing_pairs=int((~keep_mask).sum()),
    )
