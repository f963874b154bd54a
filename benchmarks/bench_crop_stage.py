"""The whole crop stage (decode, detect, crop, resize, PNG encode, tables) on LFW folders, per PNG level.

`facenet_core.detect.parallel.crop_tree` with one worker process per core on a subset of LFW identity
folders (linked into a temporary tree), into a fresh output folder per run. Rounds alternate the
PNG compression levels; figures are medians over rounds, the ratio is against level 6 (the
reference's PNG encoder setting) measured in the same run.

    .venv/bin/python benchmarks/bench_crop_stage.py --images 3000 --repeats 3
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

from facenet_core.detect.options import CropOptions  # noqa: E402
from facenet_core.detect.parallel import crop_tree  # noqa: E402
from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402


def link_subset(lfw_root: Path, target: Path, images: int) -> int:
    """Link whole identity folders, every k-th in name order, until `images` files are linked."""
    folders = sorted(p for p in lfw_root.iterdir() if p.is_dir())
    linked = 0
    for folder in folders[::3]:
        (target / folder.name).symlink_to(folder, target_is_directory=True)
        linked += sum(1 for _ in folder.iterdir())
        if linked >= images:
            break
    return linked


def folder_mib(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*.png")) / 2**20


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"))
    parser.add_argument("--images", type=int, default=3000, help="about this many images (whole folders)")
    parser.add_argument("--levels", nargs="+", type=int, default=[6, 1])
    parser.add_argument("--workers", type=int, default=0, help="0: one process per core")
    parser.add_argument("--shard-size", type=int, default=32, help="identity folders per shard (small: balanced)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_crop_stage.json"))
    args = parser.parse_args()
    seconds: dict[int, list[float]] = {level: [] for level in args.levels}
    sizes: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "input"
        source.mkdir()
        count = link_subset(Path(args.lfw), source, args.images)
        for _ in range(args.repeats):
            for level in args.levels:
                out = Path(tmp) / f"out{level}"
                options = CropOptions(device="cpu", workers=args.workers, png_compress_level=level)
                start = time.perf_counter()
                summary = crop_tree(source, out, options, shard_size=args.shard_size)
                seconds[level].append(time.perf_counter() - start)
                sizes[level] = folder_mib(out)
                if summary["resumed"]:
                    raise RuntimeError("output folder was not fresh")
                shutil.rmtree(out)
    baseline = statistics.median(seconds[6]) if 6 in seconds else None
    rows = []
    for level in args.levels:
        median = statistics.median(seconds[level])
        rows.append(
            {
                "png_compress_level": level,
                "seconds": median,
                "images_per_s": count / median,
                "png_mib": sizes[level],
                "speedup_vs_level6": baseline / median if baseline else None,
            }
        )
    meta = {"images": count, "workers": args.workers or os.cpu_count(), "repeats": args.repeats}
    atomic_write_json(args.out, {"meta": meta, "rows": rows})
    print(f"{count} images, {meta['workers']} worker processes, median of {args.repeats}")
    print(f"{'level':>5} {'seconds':>8} {'img/s':>7} {'PNG MiB':>8} {'speedup':>8}")
    for row in rows:
        speedup = f"{row['speedup_vs_level6']:8.2f}" if row["speedup_vs_level6"] else "       -"
        print(
            f"{row['png_compress_level']:>5} {row['seconds']:8.1f} {row['images_per_s']:7.1f} "
            f"{row['png_mib']:8.1f} {speedup}"
        )


if __name__ == "__main__":
    main()
