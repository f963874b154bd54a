"""The download stage: a DatasetConfig -> the folder of identity folders under raw/<name>.

RecordIO datasets are unpacked into raw/<name>/<images_subdir> (default `images`) and the
insightface verification sets shipped beside their .rec (lfw.bin, cfp_fp.bin, ...) converted into
raw/<name>/verification/<set>/ (images + pairs.txt), ready for an aligned eval set. A marker
raw/<name>/.prepared.json, written last, makes a rerun return at once (without re-hashing the
downloads, which may then be deleted to save disk) while every file the archives placed is still
there; otherwise the extraction runs again and restores what is missing. Dataset names and
`images_subdir` go through safepath before they are joined to a folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from facenet_core.config.schema import DatasetConfig
from facenet_core.fileio import atomic_write_json
from facenet_core.ingest.catalogue import resolve_dataset
from facenet_core.ingest.download import fetch, place_file
from facenet_core.ingest.extract import archive_kind, extract, missing_entries
from facenet_core.ingest.insightface_bin import convert_bin
from facenet_core.ingest.recordio_unpack import unpack_recordio
from facenet_core.safepath import safe_child, safe_relative
from facenet_core.workspace import Workspace

log = logging.getLogger(__name__)
STAGE_VERSION = 2
MARKER = ".prepared.json"
DEFAULT_RECORDIO_SUBDIR = "images"
VERIFICATION_SUBDIR = "verification"


def find_recordio(source: Path) -> Path:
    """The .rec file named by `source`: itself, or the one .rec (train.rec preferred) at most one folder down."""
    if source.is_file():
        return source
    candidates = sorted([*source.glob("*.rec"), *source.glob("*/*.rec")])
    preferred = [path for path in candidates if path.name == "train.rec"]
    chosen = preferred if len(preferred) == 1 else candidates
    if len(chosen) != 1:
        found = ", ".join(str(p) for p in candidates) or "none"
        raise FileNotFoundError(f"expected one .rec file in {source} (or one folder below it); found: {found}")
    return chosen[0]


def _subdir(target: Path, images_subdir: str) -> Path:
    return safe_relative(target, images_subdir, what="dataset images_subdir")


def _unpack(source: Path, target: Path, images_subdir: str, progress: bool) -> Path:
    """Unpack the .rec into target/images_subdir and convert the .bin sets beside it."""
    rec = find_recordio(source)
    summary = unpack_recordio(rec, _subdir(target, images_subdir), progress=progress)
    for offset, message in summary["errors"]:
        log.warning("%s: corrupt record at byte %d skipped (%s)", rec, offset, message)
    for bin_path in sorted(rec.parent.glob("*.bin")):
        convert_bin(bin_path, target / VERIFICATION_SUBDIR / bin_path.stem)
    return target / images_subdir


def _fetch_all(dataset: DatasetConfig, workspace: Workspace, progress: bool, retries: int) -> list[Path]:
    folder = safe_child(workspace.downloads, dataset.name, what="dataset name")
    return [
        fetch(
            item.url,
            folder,
            sha256=item.sha256,
            md5=item.md5,
            filename=item.filename,
            progress=progress,
            retries=retries,
        )
        for item in dataset.files
    ]


def _raw_folder(dataset: DatasetConfig, workspace: Workspace) -> Path:
    return safe_child(workspace.raw, dataset.name, what="dataset name")


def completion_marker(dataset: DatasetConfig, workspace: Workspace) -> Path | None:
    """The marker prepare_raw writes last for this dataset; None when `path` is used as is."""
    dataset = resolve_dataset(dataset)
    if dataset.path and dataset.format != "recordio":
        return None
    return _raw_folder(dataset, workspace) / MARKER


def _build(
    dataset: DatasetConfig,
    workspace: Workspace,
    target: Path,
    images_subdir: str | None,
    progress: bool,
    retries: int,
) -> Path:
    if dataset.path:
        return _unpack(Path(dataset.path).expanduser(), target, images_subdir, progress)
    if not dataset.files:
        raise ValueError(f"dataset {dataset.name!r} has no files, path, catalogue or generate: nothing to prepare")
    fetched = _fetch_all(dataset, workspace, progress, retries)
    ratio = dataset.max_extract_ratio
    if dataset.concatenate_parts:
        extract(fetched, target, progress=progress, max_ratio=ratio)
    else:
        for path in fetched:
            if archive_kind(path):
                extract(path, target, progress=progress, max_ratio=ratio)
            else:
                place_file(path, target / path.name)
    if dataset.format == "recordio":
        return _unpack(target, target, images_subdir, progress)
    root = _subdir(target, images_subdir) if images_subdir else target
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset {dataset.name!r}: images_subdir {images_subdir!r} not found in {target} "
            f"(it holds: {', '.join(sorted(p.name for p in target.iterdir())[:10])}); set dataset.images_subdir"
        )
    return root


def prepare_raw(dataset: DatasetConfig, workspace: Workspace, *, progress: bool = True, retries: int = 5) -> Path:
    """Fetch, verify and extract a dataset (or take `path` as is); return its identity-folder root.

    Catalogue values are merged first. Every step is idempotent, so a rerun after a failure
    continues where it stopped. `retries`: further attempts of a download after a transient
    failure (0 where the caller retries). `generate: synthetic` belongs to the orchestration layer.
    """
    dataset = resolve_dataset(dataset)
    if dataset.generate:
        raise ValueError(f"dataset {dataset.name!r}: generate={dataset.generate!r} is built by the pipeline, not here")
    if dataset.path:
        source = Path(dataset.path).expanduser()
        if not source.exists():
            raise FileNotFoundError(f"dataset.path {source} does not exist (dataset {dataset.name!r})")
        if dataset.format != "recordio":
            return source
    target = _raw_folder(dataset, workspace)
    marker = target / MARKER
    record = {"version": STAGE_VERSION, "dataset": dataset.model_dump(mode="json")}
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if {key: saved.get(key) for key in record} == record and Path(saved.get("root", "")).is_dir():
            missing = missing_entries(target)
            if not missing:
                return Path(saved["root"])
            log.warning(
                "%s: %d extracted files are missing (%s ...): preparing again", target, len(missing), missing[0]
            )
    images_subdir = dataset.images_subdir or (DEFAULT_RECORDIO_SUBDIR if dataset.format == "recordio" else None)
    root = _build(dataset, workspace, target, images_subdir, progress, retries)
    atomic_write_json(marker, {**record, "root": str(root)})
    return root
