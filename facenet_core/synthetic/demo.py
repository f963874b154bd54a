"""The synthetic demo dataset: seeded faces that MTCNN detects, in LFW's layout, packed as one archive.

Identities are numbered; identity k is the same person for a given seed whichever tree it lands
in, so train/ and eval/ are disjoint by taking disjoint index ranges.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from facenet_core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from facenet_core.synthetic.pack import format_pairs, lfw_pairs, write_reproducible_targz
from facenet_core.synthetic.render import identity_shape, render_image

STAGE_VERSION = 1
ARCHIVE_NAME = "synthetic_faces.tar.gz"
IDENTITY_PREFIX = "person"
MIN_IMAGE_SIZE = 64


def identity_name(index: int) -> str:
    """Folder name of identity `index` (LFW style: person_0007)."""
    return f"{IDENTITY_PREFIX}_{index:04d}"


def image_name(identity: str, number: int) -> str:
    """File name of picture `number` (1-based, as LFW) of `identity`."""
    return f"{identity}_{number:04d}.jpg"


def write_identities(
    out_root: Path, indices: range, *, images_per_identity: int, seed: int, image_size: int
) -> list[Path]:
    """Write <identity>/<identity>_<nnnn>.jpg for each identity index; the files written, sorted."""
    written = []
    for index in indices:
        name, shape = identity_name(index), identity_shape(seed, index)
        for number in range(1, images_per_identity + 1):
            data = render_image(seed, index, number, image_size, shape)
            written.append(atomic_write_bytes(out_root / name / image_name(name, number), data))
    return written


def _check_arguments(**values: int) -> None:
    """ValueError naming the first argument out of range: counts >= 1, seed >= 0, image_size >= 64."""
    for key, value in values.items():
        minimum = {"seed": 0, "image_size": MIN_IMAGE_SIZE}.get(key, 1)
        if not isinstance(value, int) or value < minimum:
            why = " (smaller faces are below MTCNN's 20 px minimum)" if key == "image_size" else ""
            raise ValueError(f"{key} must be an integer >= {minimum}{why}, got {value!r}")


def generate_identities(
    out_root: str | os.PathLike, *, num_identities: int, images_per_identity: int, seed: int, image_size: int = 250
) -> Path:
    """Write `num_identities` synthetic people, `images_per_identity` JPEGs each, under `out_root`."""
    _check_arguments(
        num_identities=num_identities, images_per_identity=images_per_identity, seed=seed, image_size=image_size
    )
    out_root = Path(out_root)
    write_identities(
        out_root, range(num_identities), images_per_identity=images_per_identity, seed=seed, image_size=image_size
    )
    return out_root


def _swap_into_place(staged: Path, target: Path) -> None:
    """Replace folder `target` by `staged` (same file system), dropping whatever `target` held."""
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, retired / target.name)
        os.replace(staged, target)
        shutil.rmtree(retired)
    else:
        os.replace(staged, target)


def make_demo_dataset(
    out_dir: str | os.PathLike,
    *,
    num_train_identities: int,
    num_eval_identities: int,
    images_per_identity: int,
    seed: int,
    num_folds: int = 10,
    pairs_per_fold: int,
    image_size: int = 250,
) -> dict:
    """Build the demo dataset under `out_dir` and pack it into one checksummed archive.

    Writes train/ and eval/ (disjoint identities, LFW layout), pairs.txt (LFW View 2 over the
    eval identities), synthetic.json (the generation parameters), then `synthetic_faces.tar.gz`
    holding all four and `synthetic_faces.tar.gz.sha256` beside it. The archive's bytes depend
    only on the arguments. Returns the paths, the archive's sha256 and the counts.
    """
    _check_arguments(
        num_train_identities=num_train_identities,
        num_eval_identities=num_eval_identities,
        images_per_identity=images_per_identity,
        seed=seed,
        num_folds=num_folds,
        pairs_per_fold=pairs_per_fold,
        image_size=image_size,
    )
    eval_indices = range(num_train_identities, num_train_identities + num_eval_identities)
    folds = lfw_pairs(
        [identity_name(i) for i in eval_indices],
        images_per_identity,
        num_folds=num_folds,
        pairs_per_fold=pairs_per_fold,
        seed=seed,
    )
    params = {
        "stage_version": STAGE_VERSION,
        "num_train_identities": num_train_identities,
        "num_eval_identities": num_eval_identities,
        "images_per_identity": images_per_identity,
        "seed": seed,
        "num_folds": num_folds,
        "pairs_per_fold": pairs_per_fold,
        "image_size": image_size,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic.", dir=out_dir))
    try:
        common = {"images_per_identity": images_per_identity, "seed": seed, "image_size": image_size}
        files = write_identities(staging / "train", range(num_train_identities), **common)
        files += write_identities(staging / "eval", eval_indices, **common)
        files.append(atomic_write_text(staging / "pairs.txt", format_pairs(folds)))
        files.append(atomic_write_json(staging / "synthetic.json", params))
        archive = write_reproducible_targz(out_dir / ARCHIVE_NAME, staging, files)
        for name in ("train", "eval"):
            _swap_into_place(staging / name, out_dir / name)
        for name in ("pairs.txt", "synthetic.json"):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    digest = sha256_file(archive)
    checksum = atomic_write_text(archive.with_name(archive.name + ".sha256"), f"{digest}  {archive.name}\n")
    return {
        "archive": archive,
        "sha256": digest,
        "sha256_file": checksum,
        "train": out_dir / "train",
        "eval": out_dir / "eval",
        "pairs": out_dir / "pairs.txt",
        "num_train_images": num_train_identities * images_per_identity,
        "num_eval_images": num_eval_identities * images_per_identity,
        "num_pairs": 2 * num_folds * pairs_per_fold,
    }
