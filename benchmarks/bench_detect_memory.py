"""Peak memory and time of MTCNN detection on a batch of 48 MP photos (8000x6000), one fresh process per run.

The photos are LFW pictures enlarged to 8000x6000: one face filling the frame, and four faces tiled
2x2 (every second photo). Each run is a child process that builds the photos, loads the networks,
calls `MTCNN().detect(photos)` once (one thread, freed memory kept as the crop workers keep it) and
reports its peak resident memory (`resource.getrusage(...).ru_maxrss`), the resident memory just
before detecting (photos and networks) and the time of the call. Figures are medians over runs.
`--repo` imports the detector from another checkout, e.g. the commit before the pixel budget:

    .venv/bin/python benchmarks/bench_detect_memory.py
    git worktree add ../before <commit> && .venv/bin/python benchmarks/bench_detect_memory.py --repo ../before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
MIB = 1024 * 1024


def _photos(lfw_root: Path, count: int, width: int, height: int) -> list:
    """`count` photos of width x height built from LFW pictures, without large temporaries."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks" / "reference"))
    from reference_images import lfw_files, read_rgb

    files = lfw_files(lfw_root)[::997]
    photos = []
    for k in range(count):
        photo = np.empty((height, width, 3), np.uint8)
        parts = 4 if k % 2 else 1
        rows = cols = 2 if parts == 4 else 1
        for i in range(parts):
            part = read_rgb(files[(4 * k + i) % len(files)])
            h, w = height // rows, width // cols
            y, x = (i // cols) * h, (i % cols) * w
            photo[y : y + h, x : x + w] = cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR)
        photos.append(photo)
    return photos


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(repo: Path, count: int, width: int, height: int) -> dict:
    """One measured detection (run in a fresh process)."""
    sys.path.insert(0, str(repo))
    import cv2
    import torch

    from facenet_core.detect.detector import MTCNN
    from facenet_core.memory import keep_freed_memory

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    keep_freed_memory()
    photos = _photos(LFW, count, width, height)
    detector = MTCNN()
    before = _resident_bytes()
    started = time.perf_counter()
    faces = detector.detect(photos)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "peak_mib": peak / MIB,
        "before_mib": before / MIB,
        "seconds": seconds,
        "boxes": [f.boxes.tolist() for f in faces],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose detector is measured")
    parser.add_argument("--photos", type=int, default=2, help="photos in the batch")
    parser.add_argument("--width", type=int, default=8000)
    parser.add_argument("--height", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every run's figures and boxes here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.repo.resolve(), args.photos, args.width, args.height)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DO_NOT_TRACK": "true"}
    command = [sys.executable, __file__, "--child", "--repo", str(args.repo), "--photos", str(args.photos)]
    command += ["--width", str(args.width), "--height", str(args.height)]
    runs = []
    for _ in range(args.runs):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(
            f"run {len(runs)}: peak {runs[-1]['peak_mib']:.0f} MiB, before detecting {runs[-1]['before_mib']:.0f} MiB, "
            f"{runs[-1]['seconds']:.1f} s, faces {[len(b) for b in runs[-1]['boxes']]}",
            flush=True,
        )
    peak = statistics.median(r["peak_mib"] for r in runs)
    before = statistics.median(r["before_mib"] for r in runs)
    seconds = statistics.median(r["seconds"] for r in runs)
    print("\n| repo | photos | peak RSS (MiB) | RSS before detect (MiB) | detection adds (MiB) | time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    batch = f"{args.photos} x {args.width}x{args.height}"
    print(f"| {args.repo} | {batch} | {peak:.0f} | {before:.0f} | {peak - before:.0f} | {seconds:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(runs))


if __name__ == "__main__":
    main()
