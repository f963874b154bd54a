"""Data preparation shared by the flows: the training data to a manifest, evaluation sets to images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import get_run_logger

from facenet_core.config import Config, DatasetConfig, DownloadFile, EvalSet
from facenet_core.data.manifest import manifest_fingerprint
from facenet_core.detect.options import CropOptions
from facenet_core.detect.table import DETECTIONS
from facenet_core.errors import UserError
from facenet_core.fileio import sha256_json
from facenet_core.ingest.catalogue import resolve_dataset
from facenet_core.tracking.contract import preprocessing, source_aligned
from facenet_core.workspace import Workspace
from flows.crop import run_crop
from tasks.caching import file_fingerprint, tree_fingerprint
from tasks.data import build_manifest_task, download_dataset, generate_demo_archive
from tasks.results import ManifestFile


@dataclass(frozen=True)
class Images:
    """A folder of identity folders ready to use (cropped, or aligned as they are) and its fingerprint."""

    root: Path
    fingerprint: str


@dataclass
class DataPrep:
    """What the data stages of one flow run share: the config, its workspace, the crop options made
    once from the config, and the crops made so far by raw folder (an evaluation set that is the
    training folder reuses the training crops)."""

    config: Config
    workspace: Workspace
    crop_options: CropOptions
    crops: dict[Path, Images] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config, workspace: Workspace) -> DataPrep:
        return cls(config, workspace, CropOptions.from_config(config))


def fetch_dataset(ws: Workspace, dataset: DatasetConfig) -> Path:
    """Raw identity folders of a dataset: a local folder, or downloaded and extracted."""
    dataset = resolve_dataset(dataset)
    if dataset.path and dataset.format == "folders":
        root = Path(dataset.path).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset.path {root} is not a folder of identity folders")
        return root
    if dataset.generate == "synthetic":
        generate = generate_demo_archive.with_options(result_storage=ws.prefect_results)
        demo = generate(workspace=ws, params=dataset.synthetic)
        files = [DownloadFile(url=demo.path.as_uri(), sha256=demo.sha256)]
        dataset = dataset.model_copy(update={"files": files, "generate": None, "synthetic": {}})
    download = download_dataset.with_options(result_storage=ws.prefect_results)
    return download(workspace=ws, dataset=dataset).root


def crop_folder(prep: DataPrep, raw_root: Path, name: str) -> Images:
    """Crops of a raw tree by the config's method (MTCNN box crops, or faces aligned on their
    landmarks for `crop: aligned`) into cropped/<name> (tagged when the output options are not the
    reference's, `<name>-aligned` for aligned crops, so other crops never overwrite these), with the
    crops' fingerprint."""
    out = prep.workspace.cropped / prep.crop_options.folder_name(name)
    cfg = prep.config
    detections = run_crop(prep.crop_options, prep.workspace, raw_root, out, cfg.crop_shard_size, cfg.dask_address)
    return Images(out, detections.fingerprint)


def check_faces_found(detections: Path, dataset: str) -> dict[str, int]:
    """Statuses of a crop of pre-aligned faces, logged (MTCNN may miss faces that fill the picture);
    a UserError when it found none, which would leave nothing to train on."""
    counts = pc.value_counts(pq.read_table(detections, columns=["status"]).column("status")).to_pylist()
    statuses = {str(row["values"]): int(row["counts"]) for row in counts}
    total = sum(statuses.values())
    found = statuses.get("ok", 0)
    get_run_logger().info(
        "MTCNN found a face in %d of %d pre-aligned images of %s (%s; per image in %s)",
        found,
        total,
        dataset,
        ", ".join(f"{status} {count}" for status, count in sorted(statuses.items())),
        detections,
    )
    if total and not found:
        raise UserError(
            f"MTCNN found no face in the {total} pre-aligned images of dataset {dataset!r} (statuses in "
            f"{detections}); check the images, or set crop: none to train on them as they are"
        )
    return statuses


@dataclass(frozen=True)
class TrainingData:
    """The training manifest and what the training images went through (`contract.preprocessing`:
    crop method, size, margin, source alignment)."""

    manifest: ManifestFile
    preprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The manifest's content fingerprint."""
        return self.manifest.fingerprint


def training_manifest(prep: DataPrep) -> TrainingData:
    """Bring the training data to a manifest: existing manifest, cropped root, or raw dataset
    (its crops recorded in `prep.crops`).

    A raw dataset is MTCNN-cropped (`crop: mtcnn`) or aligned on MTCNN's landmarks (`crop: aligned`)
    unless the config says `crop: none`, pre-aligned ones (insightface RecordIO packs) included, as
    the seed cropped glint360k.
    """
    cfg, ws = prep.config, prep.workspace
    if cfg.manifest_path:
        path = Path(cfg.manifest_path).expanduser().resolve()
        done = preprocessing(cfg, cropped_here=False)
        return TrainingData(ManifestFile(path, manifest_fingerprint(path)), done)
    name = cfg.dataset.name
    if cfg.cropped_root:
        root = Path(cfg.cropped_root).expanduser().resolve()
        images = Images(root, tree_fingerprint(root))
        done = preprocessing(cfg, aligned=source_aligned(cfg.dataset), cropped_here=False)
    else:
        dataset = resolve_dataset(cfg.dataset)
        raw = fetch_dataset(ws, dataset)
        done = preprocessing(cfg, aligned=dataset.aligned, cropped_here=True)
        if cfg.crop == "none":
            get_run_logger().info("crop: none: training on the images of %s as they are (%s)", raw, done)
            images = Images(raw, tree_fingerprint(raw))
            name = f"{name}-uncropped"
        else:
            if dataset.aligned:
                get_run_logger().info(
                    "dataset %s is pre-aligned: cropped anyway (%s, %d px) as the seed did; "
                    "crop: none trains on its faces as they are",
                    dataset.name,
                    done["crop_method"],
                    cfg.crop_image_size,
                )
            images = crop_folder(prep, raw, cfg.dataset.name)
            if dataset.aligned:
                check_faces_found(images.root / DETECTIONS, dataset.name)
            prep.crops[raw] = images
            name = images.root.name
    suffix = "" if not cfg.identities_file else f"-{file_fingerprint(cfg.identities_file)[:8]}"
    build = build_manifest_task.with_options(result_storage=ws.prefect_results)
    manifest = build(
        workspace=ws,
        root=images.root,
        out_path=ws.manifests / f"{name}{suffix}.parquet",
        data_fingerprint=images.fingerprint,
        identities_file=Path(cfg.identities_file) if cfg.identities_file else None,
        validate=cfg.manifest_validate,
        dedupe=cfg.manifest_dedupe,
    )
    return TrainingData(manifest, done)


def _resolve(base: Path | None, value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str((base / path if base is not None and not path.is_absolute() else path).resolve())


def eval_set_images(prep: DataPrep, eval_set: EvalSet) -> tuple[EvalSet, str]:
    """An evaluation set ready to evaluate (its images cropped as the training images are, by the
    same method, size and margin, unless the set is aligned already; its files resolved to absolute
    paths) and its fingerprint."""
    cfg, ws = prep.config, prep.workspace
    base = None
    if eval_set.dataset:
        if eval_set.dataset != cfg.dataset.name:
            fetch_dataset(ws, DatasetConfig(name=eval_set.dataset, catalogue=eval_set.dataset))
        base = ws.raw / eval_set.dataset
    raw_root = Path(_resolve(base, eval_set.root))
    if eval_set.aligned:
        images = Images(raw_root, tree_fingerprint(raw_root))
    elif raw_root in prep.crops:
        images = prep.crops[raw_root]
    else:
        images = prep.crops[raw_root] = crop_folder(prep, raw_root, f"eval-{eval_set.name}")
    resolved = eval_set.model_copy(
        update={
            "root": str(images.root),
            "pairs": _resolve(base, eval_set.pairs),
            "train_pairs": _resolve(base, eval_set.train_pairs),
            "people_file": _resolve(base, eval_set.people_file),
        }
    )
    fingerprint = sha256_json(
        {
            "images": images.fingerprint,
            "pairs": file_fingerprint(resolved.pairs),
            "train_pairs": file_fingerprint(resolved.train_pairs),
            "people": file_fingerprint(resolved.people_file),
            "protocol": eval_set.protocol,
        }
    )
    return resolved, fingerprint
