"""The Parquet manifest: one row per usable image, sorted by (label, path), and its readers (read_manifest:
paths and labels as numpy arrays; read_manifest_labels: the label column and fingerprint alone).

Columns: path (POSIX, relative to the root), identity, label (int32, 0..N-1 in sorted identity
order), width, height (int32), bytes (int64). The root and a content fingerprint live in the
Parquet metadata; rejects go to <stem>.rejects.parquet and a summary to <stem>.summary.json.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from facenet_core.data.scan import IdentityScan, scan_chunk
from facenet_core.errors import UserError, read_user_text
from facenet_core.fileio import atomic_path, atomic_write_json, is_utf8_name, printable_name
from facenet_core.identities import list_identities
from facenet_core.workers import cpu_cores, process_pool

MANIFEST_VERSION = "1"
# Bump when the manifest built from the same files would differ (cache keys include it).
STAGE_VERSION = 1
META_ROOT = b"facenet.root"
META_FINGERPRINT = b"facenet.fingerprint"
META_VERSION = b"facenet.manifest_version"
SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("identity", pa.string()),
        ("label", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("bytes", pa.int64()),
    ]
)
REJECT_SCHEMA = pa.schema([("path", pa.string()), ("reason", pa.string())])
IDENTITIES_PER_TASK = 64


def sidecar_paths(out_path: str | os.PathLike) -> tuple[Path, Path]:
    """(<stem>.rejects.parquet, <stem>.summary.json) beside the manifest."""
    out = Path(out_path)
    return out.with_name(f"{out.stem}.rejects.parquet"), out.with_name(f"{out.stem}.summary.json")


def read_identities_file(path: str | os.PathLike) -> list[str]:
    """Names listed one per line (blank lines and '#' comments ignored).

    LFW people files (peopleDevTrain.txt: a count line, then 'name<TAB>nimages') are read too:
    when lines carry a tab, the name is the first field and bare count lines are skipped.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"identities file {file} not found (one identity folder name per line)")
    lines = [line.strip() for line in read_user_text(file, what="identities file").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if any("\t" in line for line in lines):
        return [line.split("\t")[0] for line in lines if "\t" in line]
    return lines


def _scan_all(root: Path, identities: list[str], validate: bool, dedupe: bool, workers: int, progress: bool):
    chunks = [identities[i : i + IDENTITIES_PER_TASK] for i in range(0, len(identities), IDENTITIES_PER_TASK)]
    task = partial(scan_chunk, str(root), validate=validate, dedupe=dedupe)
    bar = tqdm(total=len(identities), unit="identity", desc="manifest scan", disable=not progress)
    with bar:
        if workers <= 1:
            for chunk in map(task, chunks):
                bar.update(len(chunk))
                yield from chunk
            return
        with process_pool(workers) as pool:
            for chunk in pool.map(task, chunks, chunksize=1):
                bar.update(len(chunk))
                yield from chunk


def content_fingerprint(table: pa.Table) -> str:
    """sha256 over the manifest's columns in row order (independent of the root's location)."""
    digest = hashlib.sha256(MANIFEST_VERSION.encode())
    paths = table.column("path").cast(pa.large_string()).combine_chunks()
    digest.update(_path_offsets(paths).tobytes())
    digest.update(_path_data(paths).tobytes())
    for name in ("label", "width", "height", "bytes"):
        digest.update(table.column(name).to_numpy().tobytes())
    return digest.hexdigest()


def _path_offsets(paths: pa.LargeStringArray) -> np.ndarray:
    offsets = np.frombuffer(paths.buffers()[1], dtype=np.int64)[paths.offset : paths.offset + len(paths) + 1]
    return offsets - offsets[0]


def _path_data(paths: pa.LargeStringArray) -> np.ndarray:
    offsets = np.frombuffer(paths.buffers()[1], dtype=np.int64)[paths.offset : paths.offset + len(paths) + 1]
    data = paths.buffers()[2]
    if data is None:
        return np.zeros(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]


def _drop_duplicates(scans: list[IdentityScan], rejects: list[tuple[str, str]]) -> int:
    """Keep the first byte-identical copy in (identity, path) order; the rest become rejects."""
    seen: dict[bytes, str] = {}
    dropped = 0
    for scan in scans:
        keep = []
        for i, digest in enumerate(scan.digests):
            first = seen.setdefault(digest, scan.paths[i])
            if first == scan.paths[i]:
                keep.append(i)
            else:
                rejects.append((scan.paths[i], f"duplicate of {first}"))
                dropped += 1
        if len(keep) != len(scan.paths):
            for name in ("paths", "widths", "heights", "sizes", "digests"):
                values = getattr(scan, name)
                setattr(scan, name, [values[i] for i in keep])
    return dropped


def _to_table(scans: list[IdentityScan]) -> pa.Table:
    counts = np.array([len(s.paths) for s in scans], dtype=np.int64)
    labels = pa.array(np.repeat(np.arange(len(scans), dtype=np.int32), counts))
    return pa.table(
        {
            "path": pa.array([p for s in scans for p in s.paths], pa.string()),
            "identity": pa.array([s.identity for s in scans], pa.string()).take(labels),
            "label": labels,
            "width": pa.array(np.fromiter((w for s in scans for w in s.widths), np.int32, int(counts.sum()))),
            "height": pa.array(np.fromiter((h for s in scans for h in s.heights), np.int32, int(counts.sum()))),
            "bytes": pa.array(np.fromiter((b for s in scans for b in s.sizes), np.int64, int(counts.sum()))),
        },
        schema=SCHEMA,
    )


def build_manifest(
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    identities_file: str | os.PathLike | None = None,
    validate: bool = True,
    dedupe: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Scan `root/<identity>/<image>` into the manifest at `out_path`; returns the summary.

    validate=True decodes every image (corrupt files become rejects); validate=False trusts the
    extension and reads only the header for the size. dedupe=True hashes every file's bytes and
    keeps the first copy of identical files in (label, path) order.
    """
    started = time.perf_counter()
    root = Path(root).resolve()
    out_path = Path(out_path)
    identities = list_identities(root, include_unreadable=True)  # a symlink loop gets its reject row
    missing: list[str] = []
    if identities_file is not None:
        wanted = read_identities_file(identities_file)
        present = set(identities)
        missing = sorted(set(wanted) - present)
        identities = sorted(present.intersection(wanted))
    bad_names = [name for name in identities if not is_utf8_name(name)]
    rejects = [(f"{printable_name(name)}/", "folder name is not valid UTF-8") for name in bad_names]
    identities = [name for name in identities if is_utf8_name(name)]
    scans, empty, ignored = [], [], 0
    for scan in _scan_all(root, identities, validate, dedupe, workers or cpu_cores(), progress):
        rejects.extend(scan.rejects)
        ignored += scan.ignored
        scans.append(scan)
    duplicates = _drop_duplicates(scans, rejects) if dedupe else 0
    for scan in scans:
        if not scan.paths and scan.readable:
            empty.append(scan.identity)
            rejects.append((f"{scan.identity}/", "empty identity folder (no usable image)"))
    scans = [s for s in scans if s.paths]
    if not scans:
        raise UserError(
            f"no usable image under {root} (expected <root>/<identity>/<image>; "
            f"{len(rejects)} rejected, {len(missing)} listed identities missing)"
        )
    table = _to_table(scans)
    fingerprint = content_fingerprint(table)
    metadata = {META_ROOT: str(root).encode(), META_FINGERPRINT: fingerprint.encode(), META_VERSION: b"1"}
    table = table.replace_schema_metadata(metadata)
    rejects_path, summary_path = sidecar_paths(out_path)
    with atomic_path(rejects_path) as tmp:
        columns = {"path": [p for p, _ in rejects], "reason": [r for _, r in rejects]}
        pq.write_table(pa.Table.from_pydict(columns, schema=REJECT_SCHEMA), tmp)
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp, use_dictionary=["identity"])  # unique paths read faster plain-encoded
    reasons: dict[str, int] = {}
    for _, reason in rejects:
        key = reason.split(":")[0] if not reason.startswith("duplicate") else "duplicate"
        reasons[key] = reasons.get(key, 0) + 1
    summary = {
        "manifest": str(out_path),
        "rejects": str(rejects_path),
        "root": str(root),
        "fingerprint": fingerprint,
        "num_images": table.num_rows,
        "num_identities": len(scans),
        "num_rejected": len(rejects) - len(empty),
        "rejected_by_reason": reasons,
        "num_duplicates": duplicates,
        "num_ignored_files": ignored,
        "empty_identities": empty,
        "missing_identities": missing,
        "validate": validate,
        "dedupe": dedupe,
        "seconds": round(time.perf_counter() - started, 3),
    }
    atomic_write_json(summary_path, summary)
    return summary


@dataclass(frozen=True, eq=False)
class Manifest:
    """A manifest held as numpy arrays (no per-row Python objects): cheap to share with workers."""

    root: Path
    fingerprint: str
    labels: np.ndarray
    offsets: np.ndarray
    identities: list[str]
    path_data: np.ndarray
    path_offsets: np.ndarray

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])

    def path(self, i: int) -> str:
        """Relative POSIX path of row `i`."""
        return self.path_data[self.path_offsets[i] : self.path_offsets[i + 1]].tobytes().decode("utf-8")

    def abspath(self, i: int) -> Path:
        """Absolute path of row `i` under the manifest's root."""
        return self.root / self.path(i)


def _metadata(path: Path) -> dict[bytes, bytes]:
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found (build it with `facenet manifest DATAROOT --out {path}`)")
    try:
        metadata = pq.read_schema(path).metadata or {}
    except pa.ArrowException as error:
        raise UserError(
            f"manifest {path} is not a Parquet file ({error}): build it with `facenet manifest DATAROOT --out {path}`"
        ) from None
    if META_FINGERPRINT not in metadata:
        raise UserError(f"{path} is not a facenet manifest (no fingerprint in its metadata); rebuild it")
    return metadata


def manifest_fingerprint(path: str | os.PathLike) -> str:
    """The content fingerprint stored in the manifest's metadata (reads the footer only)."""
    return _metadata(Path(path))[META_FINGERPRINT].decode()


@dataclass(frozen=True, eq=False)
class ManifestLabels:
    """A manifest's label column and fingerprint: all that drawing an epoch's triplets or batches reads."""

    fingerprint: str
    labels: np.ndarray

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])


def read_manifest_labels(path: str | os.PathLike) -> ManifestLabels:
    """Only the `label` column (int32) and the fingerprint of a manifest: no paths, no identity names."""
    path = Path(path)
    fingerprint = _metadata(path)[META_FINGERPRINT].decode()
    parquet = pq.ParquetFile(path)
    labels = np.empty(parquet.metadata.num_rows, dtype=np.int32)
    start = 0
    for group in range(parquet.metadata.num_row_groups):  # one row group at a time: no second copy
        for chunk in parquet.read_row_group(group, columns=["label"]).column(0).chunks:
            if chunk.type != pa.int32() or chunk.null_count:
                raise UserError(f"manifest {path}: its label column is not int32 without nulls; rebuild it")
            # The buffer itself: Array.to_numpy would import pandas (a second of the command's start).
            values = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=len(chunk), offset=4 * chunk.offset)
            labels[start : start + values.size] = values
            start += values.size
    return ManifestLabels(fingerprint=fingerprint, labels=labels)


def read_manifest(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Manifest:
    """Load a manifest's paths and labels as numpy arrays; `root` overrides the recorded root."""
    path = Path(path)
    metadata = _metadata(path)
    table = pq.read_table(path, columns=["path", "identity", "label"], read_dictionary=["identity"])
    labels = table.column("label").to_numpy().astype(np.int32, copy=False)
    counts = np.bincount(labels) if labels.size else np.zeros(0, np.int64)
    if labels.size and (np.any(np.diff(labels) < 0) or np.any(counts == 0)):
        raise ValueError(f"manifest {path} is not sorted by label 0..N-1 with every label present; rebuild it")
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    identities = table.column("identity").take(pa.array(offsets[:-1])).cast(pa.string()).to_pylist()
    paths = table.column("path").cast(pa.large_string()).combine_chunks()
    return Manifest(
        root=Path(root) if root is not None else Path(metadata[META_ROOT].decode()),
        fingerprint=metadata[META_FINGERPRINT].decode(),
        labels=labels,
        offsets=offsets,
        identities=identities,
        path_data=_path_data(paths),
        path_offsets=_path_offsets(paths),
    )
