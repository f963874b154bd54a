"""`facenet embed` speed on real LFW photos: photos/s of the whole command (decode, detect, crop,
embed, Parquet write), against the crop stage on the same photos measured in the same run.

The first `--photos` LFW photos in sorted order (person/file) are linked into a temporary identity
tree. The model is a seeded random ResNet-34 (512-d, 140 px input) saved as a project checkpoint
on the default crops (MTCNN, 224 px, margin 0). Three modes, each in a fresh process so its peak
RSS is its own, after a warm-up of the same mode on the first 8 photos (first calls, detector and
model load excluded from nothing but that warm-up):

- embed: `facenet embed <tree> --checkpoint best.pt --out gallery.parquet` through the CLI entry
  point, in process (model opening included);
- detect: `detect_faces` alone on the same photo files with the model's crop options (decode +
  detect + crop in memory), the detection share of embed;
- crop: `crop_tree` (the crop stage: PNGs and detections.parquet) into a fresh folder, one worker
  process by default as embed is one process: the baseline.

Modes alternate, `--runs` times each; medians are reported, and the ratio embed/crop photos/s.

    .venv/bin/python benchmarks/bench_embed.py [--photos 200] [--runs 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine import cpu_name  # noqa: E402

from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402

MODES = ("embed", "detect", "crop")
ARCHITECTURE, DIMENSION, INPUT_SIZE = "resnet34", 512, 140
CROP_SIZE, CROP_MARGIN = 224, 0  # the pipeline's default crops, recorded in the checkpoint
WARM_UP_PHOTOS = 8
DEFAULT_LFW = REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
RESULTS = REPO / "benchmarks" / "results"


def link_photos(lfw: Path, target: Path, count: int) -> int:
    """Link the first `count` photos (sorted person/file) into target/<person>/<file>; how many."""
    photos = sorted(p for person in lfw.iterdir() if person.is_dir() for p in person.iterdir() if p.is_file())
    for photo in photos[:count]:
        (target / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (target / photo.parent.name / photo.name).symlink_to(photo)
    return len(photos[:count])


def save_random_checkpoint(path: Path) -> None:
    """A seeded random ResNet-34 (512-d, 140 px) as training saves it, on the default crops."""
    import torch

    from facenet_core.models import create_model
    from facenet_core.train.checkpoints import save_checkpoint

    torch.manual_seed(0)
    state = {
        "epoch": 1,
        "embedding_dimension": DIMENSION,
        "batch_size_training": 64,
        "model_state_dict": create_model(ARCHITECTURE, DIMENSION).state_dict(),
        "model_architecture": ARCHITECTURE,
        "optimizer_model_state_dict": None,
        "best_distance_threshold": 1.0,
        "image_size": INPUT_SIZE,
        "normalize_mean": [0.5, 0.5, 0.5],
        "normalize_std": [0.5, 0.5, 0.5],
        "config": {
            "crop": "mtcnn",
            "crop_image_size": CROP_SIZE,
            "crop_margin": CROP_MARGIN,
            "distance_metric": "euclidean",
        },
    }
    save_checkpoint(path, state)


def run_embed(tree: Path, checkpoint: Path, out: Path, device: str, batch_size: int) -> dict:
    """The command, in process; its summary's seconds leave out opening the model."""
    from flows.cli import main as facenet

    argv = ["embed", str(tree), "--checkpoint", str(checkpoint), "--out", str(out), "--device", device]
    argv += ["--batch_size", str(batch_size), "--no_progress"]
    stdout, sys.stdout = sys.stdout, io.StringIO()  # the command's JSON summary
    try:
        if facenet(argv) != 0:
            raise RuntimeError(f"facenet {' '.join(argv)} failed")
        summary = json.loads(sys.stdout.getvalue())
    finally:
        sys.stdout = stdout
    return {"faces": summary["ok"], "after_model_open_seconds": summary["seconds"]}


def crop_options(device: str, batch_size: int, workers: int = 1):
    """The crop options of the checkpoint's contract (its crop size and margin)."""
    from facenet_core.detect.options import CropOptions

    return CropOptions(image_size=CROP_SIZE, margin=CROP_MARGIN, device=device, batch_size=batch_size, workers=workers)


def run_detect(photos: list[Path], device: str, batch_size: int) -> dict:
    from facenet_core.inference.faces import detect_faces

    found = detect_faces(photos, crop_options(device, batch_size))
    return {"faces": sum(len(photo.faces) for photo in found)}


def run_crop(tree: Path, out: Path, device: str, batch_size: int, workers: int) -> dict:
    from facenet_core.detect.parallel import crop_tree

    crop_tree(tree, out, crop_options(device, batch_size, workers))
    return {"faces": sum(1 for _ in out.rglob("*.png"))}


def worker(mode: str, tree: Path, checkpoint: Path, scratch: Path, args: argparse.Namespace) -> dict:
    """One warm-up and one timed pass of `mode` in this process: seconds, faces, peak RSS (MiB)."""
    photos = sorted(tree.glob("*/*"))
    warm_tree = scratch / "warm_up"
    for photo in photos[:WARM_UP_PHOTOS]:
        (warm_tree / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (warm_tree / photo.parent.name / photo.name).symlink_to(photo.resolve())

    def once(source: Path, name: str) -> dict:
        if mode == "embed":
            return run_embed(source, checkpoint, scratch / f"{name}.parquet", args.device, args.batch_size)
        if mode == "detect":
            return run_detect(sorted(source.glob("*/*")), args.device, args.batch_size)
        return run_crop(source, scratch / f"{name}_crops", args.device, args.batch_size, args.crop_workers)

    once(warm_tree, "warm_up")
    started = time.perf_counter()
    counts = once(tree, "timed")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "photos": len(photos), "peak_rss_mib": peak, **counts}


def run_worker(mode: str, tree: Path, checkpoint: Path, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-embed-{mode}-") as scratch:
        argv = [sys.executable, __file__, "--worker", mode, str(tree), str(checkpoint), scratch]
        argv += ["--device", args.device, "--batch-size", str(args.batch_size)]
        argv += ["--crop-workers", str(args.crop_workers)]
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(measured: list[dict]) -> dict:
    seconds = statistics.median(r["seconds"] for r in measured)
    return {
        "photos_per_second": measured[0]["photos"] / seconds,
        "seconds": [round(r["seconds"], 2) for r in measured],
        "faces": measured[0]["faces"],
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in measured),
        **(
            {"after_model_open_seconds": [r["after_model_open_seconds"] for r in measured]}
            if "after_model_open_seconds" in measured[0]
            else {}
        ),
    }


def split(results: dict, photos: int) -> dict:
    """Embed's median seconds by part: opening the model, detection (decode, detect, crop: the detect
    mode's time) and the rest (embedding the crops and writing the table)."""
    total = photos / results["embed"]["photos_per_second"]
    after_open = statistics.median(results["embed"]["after_model_open_seconds"])
    detection = photos / results["detect"]["photos_per_second"]
    return {"model open": total - after_open, "detection": detection, "embedding and write": after_open - detection}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(DEFAULT_LFW), help="LFW's lfw-deepfunneled folder")
    parser.add_argument("--photos", type=int, default=200, help="the first N photos in sorted order")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (embed, detect and crop alike)")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per detector call (embed's default)")
    parser.add_argument("--crop-workers", type=int, default=1, help="crop stage worker processes (0: one per core)")
    parser.add_argument(
        "--out", default=None, help="JSON results (default: benchmarks/results/bench_embed_DEVICE.json)"
    )
    parser.add_argument("--worker", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    disable_telemetry()
    if args.worker:
        mode, tree, checkpoint, scratch = args.worker
        print(json.dumps(worker(mode, Path(tree), Path(checkpoint), Path(scratch), args)))
        return
    lfw = Path(args.lfw)
    if not lfw.is_dir():
        print(f"bench_embed: skipped: no LFW photos at {lfw} (give --lfw)")
        return
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as folder:
        tree, checkpoint = Path(folder) / "photos", Path(folder) / "best.pt"
        photos = link_photos(lfw, tree, args.photos)
        save_random_checkpoint(checkpoint)
        for run in range(args.runs):
            for mode in MODES:
                runs[mode].append(run_worker(mode, tree, checkpoint, args))
                last = runs[mode][-1]
                print(f"run {run + 1} {mode:>6}: {last['seconds']:7.2f} s  {photos / last['seconds']:6.2f} photos/s")
    results = {mode: summarise(measured) for mode, measured in runs.items()}
    embed, detect, crop = (results[mode]["photos_per_second"] for mode in MODES)
    report = {
        "device": args.device,
        "cpu": cpu_name(),
        "load_average": os.getloadavg(),
        "photos": photos,
        "batch_size": args.batch_size,
        "crop_workers": args.crop_workers,
        "model": f"{ARCHITECTURE} {DIMENSION}-d at {INPUT_SIZE} px (random, seeded)",
        "results": results,
        "embed_over_crop": embed / crop,
        "detection_share_of_embed": embed / detect,
        "split_seconds": split(results, photos),
    }
    atomic_write_json(Path(args.out) if args.out else RESULTS / f"bench_embed_{args.device}.json", report)
    print(f"\n{photos} LFW photos, {args.device}, {report['cpu']}, load {report['load_average'][0]:.1f}")
    print(f"{'mode':<8} {'photos/s':>9} {'faces':>6} {'peak RSS':>10}  seconds")
    for mode, row in results.items():
        print(
            f"{mode:<8} {row['photos_per_second']:9.2f} {row['faces']:6d} "
            f"{row['peak_rss_mib']:7.0f} MiB  {row['seconds']}"
        )
    print(f"embed / crop stage: {embed / crop:.2f}x   detection share of embed time: {embed / detect:.0%}")
    print(
        "embed's median seconds: " + ", ".join(f"{part} {value:.1f}" for part, value in report["split_seconds"].items())
    )


if __name__ == "__main__":
    main()
