"""RecordIO throughput: streaming parse, image iteration with .idx keys, unpacking into folders.

Builds an insightface-style pack of synthetic ~6 KB JPEG-like records (header record, image
records, identity records) and compares each stage with a plain sequential read of the same
file (the I/O ceiling); extrapolates unpacking to glint360k's 17.09M images.

    .venv/bin/python benchmarks/bench_recordio.py [--records 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from facenet_core.env import disable_telemetry
from facenet_core.fileio import atomic_write_json
from facenet_core.ingest.recordio import IRHeader, RecordIOReader, RecordIOWriter, pack_record
from facenet_core.ingest.recordio_unpack import iter_images, unpack_recordio

GLINT_IMAGES = 17_091_657
PER_IDENTITY = 40


def write_pack(folder: Path, records: int) -> Path:
    rng = np.random.default_rng(0)
    rec = folder / "train.rec"
    identities = (records + PER_IDENTITY - 1) // PER_IDENTITY
    first = records + 1
    with RecordIOWriter(rec, folder / "train.idx") as writer:
        writer.write(pack_record(IRHeader(2, np.array([first, first + identities], np.float32), 0, 0)), key=0)
        for key in range(1, records + 1):
            payload = b"\xff\xd8\xff" + rng.integers(0, 256, int(rng.integers(4000, 8000)), np.uint8).tobytes()
            writer.write(pack_record(IRHeader(0, float((key - 1) // PER_IDENTITY), key, 0), payload), key=key)
        for label in range(identities):
            span = np.array([label * PER_IDENTITY + 1, min(records, (label + 1) * PER_IDENTITY) + 1], np.float32)
            writer.write(pack_record(IRHeader(2, span, 0, 0)), key=first + label)
    return rec


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def plain_read(rec: Path) -> None:
    with open(rec, "rb") as handle:
        while handle.read(1 << 20):
            pass


def parse(rec: Path) -> None:
    with RecordIOReader(rec) as reader:
        for _ in reader.records():
            pass


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/recordio.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-recordio-"))
    try:
        rec = write_pack(work, args.records)
        size_mb = rec.stat().st_size / 1e6
        stages = {
            "plain sequential read": lambda: plain_read(rec),
            "parse records (joined, checked)": lambda: parse(rec),
            "iter_images (+ .idx keys, headers)": lambda: sum(1 for _ in iter_images(rec, rec.with_suffix(".idx"))),
        }
        medians = {name: statistics.median(timed(fn, args.runs)) for name, fn in stages.items()}

        for workers in (1, 8):

            def unpack(workers: int = workers) -> None:
                out = work / f"images-{workers}"
                unpack_recordio(rec, out, progress=False, workers=workers)
                shutil.rmtree(out)

            medians[f"unpack_recordio, {workers} writer thread(s)"] = statistics.median(timed(unpack, args.runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = medians["plain sequential read"]
    print(f"{args.records} records, {size_mb:.0f} MB; median of {args.runs} runs")
    print(f"{'stage':<38} {'seconds':>8} {'records/s':>10} {'MB/s':>7} {'x plain read':>12}")
    for name, seconds in medians.items():
        print(
            f"{name:<38} {seconds:>8.3f} {args.records / seconds:>10.0f} {size_mb / seconds:>7.0f} "
            f"{seconds / baseline:>12.1f}"
        )
    unpack_rate = args.records / medians["unpack_recordio, 8 writer thread(s)"]
    print(f"glint360k unpack extrapolated: {GLINT_IMAGES / unpack_rate / 3600:.1f} h at {unpack_rate:.0f} images/s")
    result = {
        "machine": f"{platform.machine()}, shared 2-core VM",
        "records": args.records,
        "megabytes": size_mb,
        "runs": args.runs,
        "median_seconds": medians,
        "glint360k_unpack_hours": GLINT_IMAGES / unpack_rate / 3600,
    }
    atomic_write_json(args.out, result)
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
