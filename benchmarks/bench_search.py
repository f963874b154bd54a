"""Gallery search speed and memory: `search_gallery` streaming the table in batches of rows, against
the same search with the whole gallery read as one batch (the in-memory baseline).

Galleries of random 512-d unit vectors (5 faces per identity) written with `EmbeddingsWriter`;
100 random unit queries, top 5. Each search runs in a fresh process, so its peak RSS is its own,
after a search of a 1,000-row gallery (first calls excluded from the time); the two modes
alternate, `--runs` times each, and the median is reported.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000,100000,1000000] [--runs 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json
from facenet_core.inference.gallery import EmbeddingsWriter
from facenet_core.inference.search import BATCH_ROWS

DIMENSION, QUERIES, TOP_K, FACES_PER_IDENTITY = 512, 100, 5, 5
MODEL = "sha256:" + "0" * 64
WRITE_CHUNK = 65536
WARM_UP_ROWS = 1000
RESULTS = Path(__file__).resolve().parent / "results" / "bench_search.json"


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_gallery(path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    with EmbeddingsWriter(path, dimension=DIMENSION, model=MODEL, metric="euclidean") as writer:
        for start in range(0, rows, WRITE_CHUNK):
            count = min(WRITE_CHUNK, rows - start)
            index = np.arange(start, start + count)
            identities = [f"person{i // FACES_PER_IDENTITY:07d}" for i in index]
            vectors = unit_vectors(rng, count)
            writer.write_arrays(
                {
                    "source": [f"gallery/{name}/{i}.jpg" for name, i in zip(identities, index, strict=True)],
                    "identity": identities,
                    "face_index": pa.array(np.zeros(count, np.int32)),
                    "box": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(count * 4, np.int32)), 4),
                    "score": pa.array(np.ones(count, np.float32)),
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIMENSION),
                    "status": ["ok"] * count,
                }
            )


def worker(gallery: str, warm_up: str, batch_rows: int, device: str) -> None:
    """One search in this process, after one of the small `warm_up` gallery (first calls of torch,
    pyarrow compute and Parquet reading): prints its seconds, the RSS before it and the peak RSS
    (MiB) as JSON."""
    import psutil

    from facenet_core.inference.search import search_gallery

    queries = unit_vectors(np.random.default_rng(0), QUERIES)
    search_gallery(queries, warm_up, model=MODEL, top_k=TOP_K, batch_rows=batch_rows, device=device)
    before = psutil.Process().memory_info().rss / 2**20
    started = time.perf_counter()
    found = search_gallery(queries, gallery, model=MODEL, top_k=TOP_K, batch_rows=batch_rows, device=device)
    seconds = time.perf_counter() - started
    assert all(len(matches) == TOP_K for matches in found)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_before_mib": before, "peak_rss_mib": peak}))


def run_worker(gallery: Path, warm_up: Path, batch_rows: int, device: str) -> dict:
    argv = [sys.executable, __file__, "--worker", str(gallery), str(warm_up), "--batch_rows", str(batch_rows)]
    argv += ["--device", device]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    disable_telemetry()
    if args.worker:
        worker(*args.worker, args.batch_rows, args.device)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        warm_up = Path(folder) / "warm_up.parquet"
        write_gallery(warm_up, WARM_UP_ROWS)
        for size in (int(s) for s in args.sizes.split(",")):
            gallery = Path(folder) / f"gallery_{size}.parquet"
            started = time.perf_counter()
            write_gallery(gallery, size)
            written = time.perf_counter() - started
            modes = {"streamed": args.batch_rows, "one batch": size}
            runs: dict[str, list[dict]] = {mode: [] for mode in modes}
            for _ in range(args.runs):
                for mode, batch_rows in modes.items():
                    runs[mode].append(run_worker(gallery, warm_up, batch_rows, args.device))
            row = {"gallery_rows": size, "file_mib": gallery.stat().st_size / 2**20, "write_seconds": written}
            for mode, measured in runs.items():
                seconds = statistics.median(r["seconds"] for r in measured)
                row[mode] = {
                    "queries_per_second": QUERIES / seconds,
                    "seconds": [round(r["seconds"], 3) for r in measured],
                    "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in measured),
                    "rss_before_mib": statistics.median(r["rss_before_mib"] for r in measured),
                }
            results.append(row)
            gallery.unlink()
            print(
                f"{size:>9,} rows  {row['file_mib']:7.0f} MiB  "
                + "  ".join(
                    f"{mode}: {row[mode]['queries_per_second']:8.1f} q/s, peak {row[mode]['peak_rss_mib']:6.0f} MiB"
                    for mode in modes
                ),
                flush=True,
            )
    atomic_write_json(RESULTS, {"device": args.device, "batch_rows": args.batch_rows, "results": results})


if __name__ == "__main__":
    main()
