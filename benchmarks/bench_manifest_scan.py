"""Manifest scanning on generated files (fast and validating modes) and reading at 17.09M rows.

Writes --files PNGs (--side px; 32 px: a few KiB) in folders of --per_identity under /tmp, scans
them with build_manifest in both modes (warm page cache), extrapolates linearly to 17.09M files
and deletes the tree. Then writes a synthetic manifest of --read_rows rows (glint360k-sized
labels, paths like id0001234/0001234567.png) as build_manifest writes it and times read_manifest.

    .venv/bin/python benchmarks/bench_manifest_scan.py [--files 100000] [--side 32] [--workers 2]
        [--runs 2] [--read_rows 17090000]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from facenet_core.data.manifest import (
    META_FINGERPRINT,
    META_ROOT,
    META_VERSION,
    SCHEMA,
    build_manifest,
    content_fingerprint,
    read_manifest,
)
from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json

GLINT_IMAGES = 17_090_000


def write_tree(root: Path, files: int, per_identity: int, side: int = 32) -> int:
    """`files` PNGs (16 distinct contents) in folders of `per_identity`; returns total bytes."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(16):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
        blobs.append(buffer.getvalue())
    total = 0
    for i in range(files):
        folder = root / f"id{i // per_identity:06d}"
        if i % per_identity == 0:
            folder.mkdir(parents=True)
        blob = blobs[i % len(blobs)]
        (folder / f"{i:07d}.png").write_bytes(blob)
        total += len(blob)
    return total


def write_synthetic_manifest(path: Path, rows: int) -> None:
    """A manifest of `rows` rows over glint360k-like labels, written with build_manifest's options."""
    from bench_triplets import IDENTITIES, synthetic_labels

    labels = synthetic_labels()[:rows]
    names = np.char.add(b"id", np.char.zfill(np.arange(IDENTITIES).astype("S7"), 7))
    files = np.char.add(np.arange(rows).astype("S10"), b".png")
    paths = pa.array(np.char.add(np.char.add(names[labels], b"/"), files)).cast(pa.string())
    columns = {
        "path": paths,
        "identity": pa.array(names).cast(pa.string()).take(pa.array(labels)),
        "label": pa.array(labels),
        "width": pa.array(np.full(rows, 224, np.int32)),
        "height": pa.array(np.full(rows, 224, np.int32)),
        "bytes": pa.array(np.full(rows, 60_000, np.int64)),
    }
    table = pa.table(columns, schema=SCHEMA)
    metadata = {META_ROOT: b"/data", META_FINGERPRINT: content_fingerprint(table).encode(), META_VERSION: b"1"}
    pq.write_table(table.replace_schema_metadata(metadata), path, use_dictionary=["identity"])


def time_reads(path: Path, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        manifest = read_manifest(path)
        seconds.append(time.perf_counter() - start)
        del manifest
    return seconds


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per_identity", type=int, default=47)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--side", type=int, default=32, help="image side in pixels (224: crop-sized files)")
    parser.add_argument("--read_rows", type=int, default=17_090_000, help="0 skips the read benchmark")
    parser.add_argument("--out", default="benchmarks/results/manifest_scan.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_scan_"))
    try:
        start = time.perf_counter()
        total = write_tree(tmp / "root", args.files, args.per_identity, args.side)
        write_seconds = time.perf_counter() - start
        print(f"wrote {args.files} files ({total / 2**20:.0f} MiB) in {write_seconds:.0f} s")
        seconds: dict[str, list[float]] = {"fast": [], "validate": []}
        for _ in range(args.runs):
            for mode in seconds:
                start = time.perf_counter()
                summary = build_manifest(
                    tmp / "root",
                    tmp / f"{mode}.parquet",
                    validate=mode == "validate",
                    workers=args.workers,
                    progress=False,
                )
                seconds[mode].append(time.perf_counter() - start)
                assert summary["num_images"] == args.files
    finally:
        shutil.rmtree(tmp)
    result = {
        "files": args.files,
        "mib": total / 2**20,
        "write_seconds": write_seconds,
        "side": args.side,
        "workers": args.workers,
        "runs": seconds,
    }
    print(f"{'mode':<10} {'seconds':>8} {'files/s':>9} {'17.09M extrapolated':>20}")
    for mode, runs in seconds.items():
        median = statistics.median(runs)
        rate = args.files / median
        result[mode] = {"seconds": median, "files_per_s": rate, "glint_hours": GLINT_IMAGES / rate / 3600}
        print(f"{mode:<10} {median:>8.1f} {rate:>9.0f} {GLINT_IMAGES / rate / 3600:>18.2f} h")
    if args.read_rows:
        with tempfile.TemporaryDirectory(prefix="bench_read_") as folder:
            path = Path(folder) / "big.parquet"
            write_synthetic_manifest(path, args.read_rows)
            reads = time_reads(path, max(args.runs, 3))
            result["read"] = {"rows": args.read_rows, "mib": path.stat().st_size / 2**20, "runs": reads}
        print(f"read_manifest, {args.read_rows} rows: median {statistics.median(reads):.1f} s of {reads}")
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
