"""Data preparation shared by the flows: training data to a manifest, evaluation sets to images."""

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
from flows.crop import crop_options, run_crop
from tasks import prepare as prepare_tasks
from tasks.caching import file_fingerprint, results_dir, tree_fingerprint


def _storage(ws: Workspace) -> dict[str, Any]:
    return {"result_storage": results_dir(ws.root)}


def fetch_dataset(ws: Workspace, dataset: DatasetConfig) -> Path:
    """Raw identity folders of a dataset: a local folder, or downloaded and extracted."""
    dataset = resolve_dataset(dataset)
    if dataset.path and dataset.format == "folders":
        root = Path(dataset.path).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset.path {root} is not a folder of identity folders")
        return root
    if dataset.generate == "synthetic":
        demo = prepare_tasks.generate_demo_archive.with_options(**_storage(ws))(str(ws.root), dataset.synthetic)
        url = Path(demo["archive"]).as_uri()
        files = [DownloadFile(url=url, sha256=demo["sha256"])]
        dataset = dataset.model_copy(update={"files": files, "generate": None, "synthetic": {}})
    result = prepare_tasks.download_dataset.with_options(**_storage(ws))(str(ws.root), dataset.model_dump(mode="json"))
    return Path(result["root"])


def crop_folder(cfg: Config, ws: Workspace, raw_root: Path, name: str) -> tuple[Path, str]:
    """MTCNN crops of a raw tree into cropped/<name> (tagged when the output options are not the
    reference's, so other crops never overwrite these); returns the root and its fingerprint."""
    out = ws.cropped / CropOptions(**crop_options(cfg)).folder_name(name)
    merged = run_crop(cfg, raw_root, out)
    return out, merged["fingerprint"]


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
    """The training manifest, the crops this run made (by raw root) and what the training images
    went through (`contract.preprocessing`: crop method, size, margin, source alignment)."""

    manifest: str
    fingerprint: str
    crops: dict[Path, tuple[Path, str]]
    preprocessing: dict[str, Any] = field(default_factory=dict)


def prepare_training_data(cfg: Config, ws: Workspace) -> TrainingData:
    """Bring the training data to a manifest: existing manifest, cropped root, or raw dataset.

    A raw dataset is MTCNN-cropped unless the config says `crop: none`, pre-aligned ones
    (insightface RecordIO packs) included, as the seed cropped glint360k.
    """
    if cfg.manifest_path:
        path = Path(cfg.manifest_path).expanduser().resolve()
        done = preprocessing(cfg, cropped_here=False)
        return TrainingData(str(path), manifest_fingerprint(path), {}, done)
    crops: dict[Path, tuple[Path, str]] = {}
    name = cfg.dataset.name
    if cfg.cropped_root:
        root = Path(cfg.cropped_root).expanduser().resolve()
        fingerprint = tree_fingerprint(root)
        done = preprocessing(cfg, aligned=source_aligned(cfg.dataset), cropped_here=False)
    else:
        dataset = resolve_dataset(cfg.dataset)
        raw = fetch_dataset(ws, dataset)
        done = preprocessing(cfg, aligned=dataset.aligned, cropped_here=True)
        if cfg.crop == "none":
            get_run_logger().info("crop: none: training on the images of %s as they are (%s)", raw, done)
            root, fingerprint = raw, tree_fingerprint(raw)
            name = f"{name}-uncropped"
        else:
            if dataset.aligned:
                get_run_logger().info(
                    "dataset %s is pre-aligned: MTCNN-cropped anyway (%d px, margin %d) as the seed did; "
                    "crop: none trains on its faces as they are",
                    dataset.name,
                    cfg.crop_image_size,
                    cfg.crop_margin,
                )
            root, fingerprint = crop_folder(cfg, ws, raw, cfg.dataset.name)
            if dataset.aligned:
                check_faces_found(root / DETECTIONS, dataset.name)
            crops[raw] = (root, fingerprint)
            name = root.name
    suffix = "" if not cfg.identities_file else f"-{file_fingerprint(cfg.identities_file)[:8]}"
    out = ws.manifests / f"{name}{suffix}.parquet"
    built = prepare_tasks.build_manifest.with_options(**_storage(ws))(
        str(ws.root),
        str(root),
        str(out),
        fingerprint,
        identities_file=cfg.identities_file,
        validate=cfg.manifest_validate,
        dedupe=cfg.manifest_dedupe,
    )
    return TrainingData(built["manifest"], built["fingerprint"], crops, done)


def _resolve(base: Path | None, value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str((base / path if base is not None and not path.is_absolute() else path).resolve())


def prepare_eval_set(
    cfg: Config, ws: Workspace, eval_set: EvalSet, crops_by_raw: dict[Path, tuple[Path, str]]
) -> tuple[dict[str, Any], str]:
    """An evaluation set ready to evaluate (cropped unless aligned) and its fingerprint."""
    base = None
    if eval_set.dataset:
        if eval_set.dataset != cfg.dataset.name:
            fetch_dataset(ws, DatasetConfig(name=eval_set.dataset, catalogue=eval_set.dataset))
        base = ws.raw / eval_set.dataset
    raw_root = Path(_resolve(base, eval_set.root))
    if eval_set.aligned:
        root, images_fingerprint = raw_root, tree_fingerprint(raw_root)
    elif raw_root in crops_by_raw:
        root, images_fingerprint = crops_by_raw[raw_root]
    else:
        root, images_fingerprint = crop_folder(cfg, ws, raw_root, f"eval-{eval_set.name}")
        crops_by_raw[raw_root] = (root, images_fingerprint)
    resolved = eval_set.model_copy(
        update={
            "root": str(root),
            "pairs": _resolve(base, eval_set.pairs),
            "train_pairs": _resolve(base, eval_set.train_pairs),
            "people_file": _resolve(base, eval_set.people_file),
        }
    ).model_dump(mode="json")
    fingerprint = sha256_json(
        {
            "images": images_fingerprint,
            "pairs": file_fingerprint(resolved["pairs"]),
            "train_pairs": file_fingerprint(resolved["train_pairs"]),
            "people": file_fingerprint(resolved["people_file"]),
            "protocol": eval_set.protocol,
        }
    )
    return resolved, fingerprint
