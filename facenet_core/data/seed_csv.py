"""The seed's CSV manifests (its generate_csv_files.py: `id,name,class`) as the project's Parquet manifest.

The seed published such files for glint360k and VGGFace2. Each row names an identity folder (`name`)
and a file stem (`id`, the file name cut at its first dot); the seed's dataset opened
`<root>/<name>/<id>` + the first of .jpg, .png, .jpeg that exists. Here a row whose image is absent,
unreadable or named unsafely is rejected (recorded in <stem>.rejects.parquet) instead of failing the
training run later; labels and order follow the manifest's rules (0..N-1 in sorted identity order,
rows sorted by label then path), which for a complete folder are the seed's `class` values.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import csv as pacsv

from facenet_core.data.manifest import (
    META_FINGERPRINT,
    META_ROOT,
    META_VERSION,
    REJECT_SCHEMA,
    _scan_all,
    _to_table,
    content_fingerprint,
    sidecar_paths,
)
from facenet_core.errors import UserError
from facenet_core.fileio import atomic_path, atomic_write_json
from facenet_core.safepath import UnsafeNameError, safe_child
from facenet_core.workers import cpu_cores

SEED_EXTENSIONS = (".jpg", ".png", ".jpeg")  # the order the seed's dataset tried them in


def read_seed_csv(path: str | os.PathLike) -> pa.Table:
    """The `id`, `name` and `class` columns of a seed CSV, ids and names kept as text ("0001")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--from_csv {path} not found")
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={"id": pa.string(), "name": pa.string(), "class": pa.string()},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise UserError(
            f"--from_csv {path} is not a readable CSV ({error}): give a file made by generate_csv_files.py"
        ) from error
    missing = {"id", "name"} - set(table.column_names)
    if missing:
        raise UserError(
            f"--from_csv {path} has no {' or '.join(sorted(missing))} column (found {table.column_names}): "
            "expected the header id,name,class of the seed's generate_csv_files.py"
        )
    if table.num_rows == 0:
        raise UserError(f"--from_csv {path} has no rows")
    return table


def _wanted(table: pa.Table) -> tuple[dict[str, list[str]], list[str]]:
    """Identity name -> its file stems in (name, id) order, and the `name/id` of repeated rows."""
    order = pc.sort_indices(table, sort_keys=[("name", "ascending"), ("id", "ascending")])
    names = table.column("name").take(order).to_pylist()
    ids = table.column("id").take(order).to_pylist()
    wanted: dict[str, list[str]] = {}
    repeated: list[str] = []
    for (name, stem), group in itertools.groupby(zip(names, ids, strict=True)):
        wanted.setdefault(name, []).append(stem)
        repeated += [f"{name}/{stem}"] * (sum(1 for _ in group) - 1)
    return wanted, repeated


def _unsafe(root: Path, name: str, what: str) -> str | None:
    """Why `name` cannot be joined to `root` (None: a plain name that stays inside it)."""
    try:
        safe_child(root, name, what=what)
    except UnsafeNameError as error:
        return str(error)
    return None


def _seed_labels_match(table: pa.Table, identities: list[str]) -> bool | None:
    """Whether the CSV's `class` values are the labels this manifest gives (None: no class column)."""
    if "class" not in table.column_names:
        return None
    pairs = set(zip(table.column("name").to_pylist(), table.column("class").to_pylist(), strict=True))
    return pairs == {(name, str(label)) for label, name in enumerate(identities)}


def build_manifest_from_csv(
    csv_path: str | os.PathLike,
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    validate: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Turn a seed CSV over `root` into the manifest at `out_path`; returns the summary.

    Rejects (path, reason): unsafe names, duplicate rows, a missing identity folder, no
    `<id>.jpg|.png|.jpeg`, an unreadable image. validate=False reads image headers only.
    """
    started = time.perf_counter()
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root} is not a folder of identity folders")
    out_path = Path(out_path)
    table = read_seed_csv(csv_path)
    wanted, repeated = _wanted(table)
    rejects = [(row, "duplicate row: this name and id are listed before") for row in repeated]
    present = []
    for name, stems in list(wanted.items()):
        unsafe = {stem: _unsafe(root, stem, f"CSV id of {name!r}") for stem in stems}
        if problem := _unsafe(root, name, "CSV name"):
            unsafe = dict.fromkeys(stems, problem)
        rejects += [(f"{name}/{stem}", f"unsafe name: {why}") for stem, why in unsafe.items() if why]
        wanted[name] = [stem for stem in stems if not unsafe[stem]]
        if not wanted[name]:
            continue
        if not (root / name).is_dir():
            rejects += [(f"{name}/{stem}", "missing: no identity folder") for stem in wanted[name]]
        else:
            present.append(name)
    scans = []
    for scan in _scan_all(root, present, validate, False, workers or cpu_cores(), progress):
        scans.append(_keep_listed(scan, wanted[scan.identity], rejects))
    empty = [scan.identity for scan in scans if not scan.paths]
    scans = [scan for scan in scans if scan.paths]
    if not scans:
        raise UserError(
            f"--from_csv {csv_path}: no row names an image under --root {root} ({len(rejects)} rejected; "
            "is --root the folder the CSV was generated from?)"
        )
    manifest = _to_table(scans)
    fingerprint = content_fingerprint(manifest)
    metadata = {META_ROOT: str(root).encode(), META_FINGERPRINT: fingerprint.encode(), META_VERSION: b"1"}
    rejects_path, summary_path = sidecar_paths(out_path)
    with atomic_path(rejects_path) as tmp:
        columns = {"path": [p for p, _ in rejects], "reason": [r for _, r in rejects]}
        pq.write_table(pa.Table.from_pydict(columns, schema=REJECT_SCHEMA), tmp)
    with atomic_path(out_path) as tmp:
        pq.write_table(manifest.replace_schema_metadata(metadata), tmp, use_dictionary=["identity"])
    reasons: dict[str, int] = {}
    for _, reason in rejects:
        reasons[reason.split(":")[0]] = reasons.get(reason.split(":")[0], 0) + 1
    summary = {
        "manifest": str(out_path),
        "rejects": str(rejects_path),
        "root": str(root),
        "from_csv": str(csv_path),
        "fingerprint": fingerprint,
        "num_csv_rows": table.num_rows,
        "num_images": manifest.num_rows,
        "num_identities": len(scans),
        "num_rejected": len(rejects),
        "rejected_by_reason": reasons,
        "empty_identities": empty,
        "labels_as_csv_class": _seed_labels_match(table, [scan.identity for scan in scans]),
        "validate": validate,
        "seconds": round(time.perf_counter() - started, 3),
    }
    atomic_write_json(summary_path, summary)
    return summary


def _keep_listed(scan, stems: list[str], rejects: list[tuple[str, str]]):
    """Narrow a folder scan to the CSV's stems: each the first of <id>.jpg/.png/.jpeg present."""
    usable = {path: i for i, path in enumerate(scan.paths)}
    unreadable = dict(scan.rejects)
    keep = []
    for stem in stems:
        candidates = [f"{scan.identity}/{stem}{ext}" for ext in SEED_EXTENSIONS]
        path = next((c for c in candidates if c in usable or c in unreadable), None)
        if path is None:
            rejects.append((f"{scan.identity}/{stem}", f"missing: no {stem}.jpg, .png or .jpeg"))
        elif path in unreadable:
            rejects.append((path, unreadable[path]))
        else:
            keep.append(usable[path])
    keep.sort()  # rows in path order within the identity, as scanned
    for name in ("paths", "widths", "heights", "sizes", "digests"):
        values = getattr(scan, name)
        setattr(scan, name, [values[i] for i in keep])
    return scan
