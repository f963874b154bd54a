"""The facenet-crop flow on LFW folders: shard tasks cropping in their own threads vs in worker processes.

Runs the Prefect flow (embedded server, ThreadPoolTaskRunner with one thread per core) on a subset
of LFW identity folders, into a fresh workspace and output folder per run, so no shard is cached.
"threads" crops each shard inside its task's thread (`workers: 1`: the crop stage before worker
processes, parallel only where torch and OpenCV release the GIL); "processes" hands each shard to
one of the long-lived worker processes (`workers: 0`, one per core; their start-up is included).
Rounds alternate; figures are medians, the ratio is against "threads" measured in the same run.

    .venv/bin/python benchmarks/bench_crop_flow.py --images 3000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_crop_stage import link_subset  # noqa: E402

from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402

VARIANTS = {"threads": 1, "processes": 0}


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"))
    parser.add_argument("--images", type=int, default=3000, help="about this many images (whole folders)")
    parser.add_argument("--shard-size", type=int, default=32, help="identity folders per shard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_crop_flow.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PREFECT_HOME"] = str(Path(tmp) / "prefect-home")
        from prefect.task_runners import ThreadPoolTaskRunner

        from facenet_core.detect.crop import CropOptions
        from flows.crop import crop_dataset

        cores = CropOptions().resolved_workers()
        flow = crop_dataset.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cores))
        source = Path(tmp) / "input"
        source.mkdir()
        count = link_subset(Path(args.lfw), source, args.images)
        warm_up = Path(tmp) / "warm-up"
        warm_up.mkdir()
        link_subset(Path(args.lfw), warm_up, 1)
        # The embedded Prefect server starts on the first flow run: keep it out of the timings.
        flow(str(Path(tmp) / "ws-warm-up"), str(warm_up), str(Path(tmp) / "ws-warm-up" / "cropped"), {"workers": 1})
        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for round_ in range(args.repeats):
            for name, workers in VARIANTS.items():
                workspace = Path(tmp) / f"ws-{name}-{round_}"
                options = {"device": "cpu", "workers": workers}
                start = time.perf_counter()
                flow(str(workspace), str(source), str(workspace / "cropped"), options, args.shard_size)
                seconds[name].append(time.perf_counter() - start)
                shutil.rmtree(workspace)
    baseline = statistics.median(seconds["threads"])
    rows = [
        {
            "variant": name,
            "seconds": statistics.median(values),
            "images_per_s": count / statistics.median(values),
            "speedup_vs_threads": baseline / statistics.median(values),
            "all_seconds": values,
        }
        for name, values in seconds.items()
    ]
    atomic_write_json(args.out, {"meta": {"images": count, "cores": cores, "repeats": args.repeats}, "rows": rows})
    print(f"{count} images, {cores} shard threads, median of {args.repeats}")
    print(f"{'variant':>10} {'seconds':>8} {'img/s':>7} {'speedup':>8}")
    for row in rows:
        print(f"{row['variant']:>10} {row['seconds']:8.1f} {row['images_per_s']:7.1f} {row['speedup_vs_threads']:8.2f}")


if __name__ == "__main__":
    main()
