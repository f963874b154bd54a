"""insightface verification sets (.bin: lfw, cfp_fp, agedb_30, calfw, cplfw) as folders + LFW pairs.

A .bin is a pickle of (list of encoded images, list of issame flags): pair i is images 2i and
2i+1. The faces are 112x112 and already aligned, so they skip the crop stage. The conversion
writes `pair_<i>/pair_<i>_0001.<ext>` + `_0002` for a same pair, `pair_<i>_a/..._0001` and
`pair_<i>_b/..._0001` for a different pair, and a View 2 style `pairs.txt`: 10 contiguous folds
(the folds insightface evaluates with), each with its same pairs first, header `10<TAB>n`.

Unpickling runs through an allow-list: plain containers, bytes, booleans and numpy arrays of
bool/uint8 only; any other global in the file is refused before it can run.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct

from facenet_core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from facenet_core.ingest.recordio_unpack import image_extension

FOLDS = 10
MARKER = ".converted.json"
ALLOWED_DTYPES = {"b1", "u1", "?", "|b1", "|u1"}


class UnsafePickleError(ValueError):
    """A pickle that asks for a global outside the allow-list."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """How Python 3 pickles bytes at protocol 2 (`_codecs.encode(text, 'latin1')`), latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _dtype(spec, *args):
    dtype = np.dtype(spec, *args)
    if dtype.str not in ALLOWED_DTYPES and dtype.char not in ALLOWED_DTYPES:
        raise UnsafePickleError(f"refusing numpy dtype {dtype!r} (only bool and uint8 arrays are expected)")
    return dtype


ALLOWED_GLOBALS = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "dtype"): _dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a verification .bin needs; everything else is an error."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name} from an untrusted pickle") from None


def load_bin(path: str | os.PathLike) -> tuple[list[bytes], list[bool]]:
    """The encoded images and issame flags of a .bin, checked for shape and types."""
    path = Path(path)
    try:
        content = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as error:
        raise ValueError(f"{path}: not a verification .bin pickle ({error})") from error
    if not (isinstance(content, tuple | list) and len(content) == 2):
        raise ValueError(f"{path}: expected a pickled (images, issame) pair, got {type(content).__name__}")
    raw_images, raw_issame = content
    images = [bytes(item.tobytes() if isinstance(item, np.ndarray) else item) for item in raw_images]
    issame = [bool(flag) for flag in (raw_issame.tolist() if isinstance(raw_issame, np.ndarray) else raw_issame)]
    if len(images) != 2 * len(issame):
        raise ValueError(f"{path}: {len(images)} images for {len(issame)} pairs (expected two images per pair)")
    return images, issame


def _pair_files(index: int, same: bool) -> tuple[str, str, str]:
    """(pairs.txt line, relative path of the first image, of the second) without extension."""
    name = f"pair_{index:05d}"
    if same:
        return f"{name}\t1\t2", f"{name}/{name}_0001", f"{name}/{name}_0002"
    first, second = f"{name}_a", f"{name}_b"
    return f"{first}\t1\t{second}\t1", f"{first}/{first}_0001", f"{second}/{second}_0001"


def _fold_order(path: Path, issame: list[bool]) -> tuple[list[int], int]:
    """Pair indices fold by fold (same first, then different) and the same-pairs count per fold."""
    if len(issame) % FOLDS:
        raise ValueError(f"{path}: {len(issame)} pairs cannot form {FOLDS} equal folds")
    size = len(issame) // FOLDS
    order, per_fold = [], set()
    for fold in range(FOLDS):
        rows = range(fold * size, (fold + 1) * size)
        same = [i for i in rows if issame[i]]
        per_fold.add(len(same))
        order += same + [i for i in rows if not issame[i]]
    if per_fold != {size // 2} or size % 2:
        raise ValueError(f"{path}: folds are not half same / half different pairs; cannot write an LFW pairs file")
    return order, size // 2


def convert_bin(bin_path: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Write the images and `pairs.txt` of a .bin under `out_dir`; idempotent (marker last)."""
    bin_path, out = Path(bin_path), Path(out_dir)
    source = {"bin": bin_path.name, "size": bin_path.stat().st_size}
    marker = out / MARKER
    if marker.is_file():
        summary = json.loads(marker.read_text())
        if summary.get("source") == source:
            return summary
    images, issame = load_bin(bin_path)
    order, same_per_fold = _fold_order(bin_path, issame)
    lines = [f"{FOLDS}\t{same_per_fold}"]
    for index in order:
        line, first, second = _pair_files(index, issame[index])
        lines.append(line)
        for relative, data in ((first, images[2 * index]), (second, images[2 * index + 1])):
            extension = image_extension(data)
            if extension is None:
                raise ValueError(f"{bin_path}: image {relative} of pair {index} is not a JPEG/PNG/BMP")
            atomic_write_bytes(out / f"{relative}.{extension}", data)
    pairs = atomic_write_text(out / "pairs.txt", "\n".join(lines) + "\n")
    summary = {"source": source, "pairs": len(issame), "images": len(images), "pairs_file": pairs.name}
    atomic_write_json(marker, summary)
    return summary
