"""The glint360k path (RecordIO -> unpack -> MTCNN crop at 224, margin 0) on insightface-like faces.

LFW pictures are aligned the way insightface aligned glint360k: MTCNN's five landmarks (from a crop
run on the 250x250 originals, timed as the baseline) mapped onto the arcface 112x112 template by a
least-squares similarity transform (`facenet_core.detect.align`, as insightface's `norm_crop`),
saved as JPEG and packed with the project's RecordIO writer. Then, per round: crop the 250x250
originals again (the baseline, measured in the same run), unpack a pack of --unpack-records copies
(`unpack_recordio`), unpack the faces and crop them (`crop_tree`, PNG level 1). By default the crops
run in this process (`--workers 1`: no worker start-up in the figures) and the steadier figure on a
shared machine is the CPU time per image; an idle machine crops about (cores / CPU time per image)
images per second with one worker process per core. Reports per-image rates, the detection rate and
box scale on 112x112 inputs, the mean PNG size at 224, and the glint360k extrapolation. Only faces
MTCNN found in the originals are packed, as insightface's were.

    .venv/bin/python benchmarks/bench_recordio_crop.py --images 500 --repeats 3
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine import cpu_name  # noqa: E402

from facenet_core.detect.align import aligned_face  # noqa: E402
from facenet_core.detect.options import CropOptions  # noqa: E402
from facenet_core.detect.parallel import crop_tree  # noqa: E402
from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402
from facenet_core.ingest.insightface_pack import write_recordio_pack  # noqa: E402
from facenet_core.ingest.recordio_unpack import unpack_recordio  # noqa: E402

GLINT_IMAGES = 17_091_657
GLINT_IDENTITIES = 360_232


def link_subset(lfw_root: Path, target: Path, images: int) -> int:
    """Link whole identity folders, every 7th in name order, until `images` files are linked."""
    linked = 0
    for folder in sorted(p for p in lfw_root.iterdir() if p.is_dir())[::7]:
        (target / folder.name).symlink_to(folder, target_is_directory=True)
        linked += sum(1 for _ in folder.iterdir())
        if linked >= images:
            break
    return linked


def aligned_faces(source: Path, detections: pd.DataFrame, quality: int) -> list[list[bytes]]:
    """Every detected face warped onto the arcface template, JPEG-encoded, grouped by identity."""
    people: dict[str, list[bytes]] = {}
    for row in detections[detections["status"] == "ok"].itertuples():
        points = np.array([[getattr(row, f"lm_x{i}"), getattr(row, f"lm_y{i}")] for i in range(1, 6)])
        pixels = np.asarray(Image.open(source / row.source).convert("RGB"))
        face = aligned_face(pixels, points, 112)
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, format="JPEG", quality=quality)
        people.setdefault(Path(row.source).parent.name, []).append(buffer.getvalue())
    return list(people.values())


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the crop worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of fn(): on a shared machine the CPU time per image is the steadier figure."""
    cpu, start = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - start, cpu_seconds() - cpu


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"))
    parser.add_argument("--images", type=int, default=500, help="about this many LFW images (whole folders)")
    parser.add_argument("--workers", type=int, default=1, help="crop processes (1: in this process; 0: one per core)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the aligned faces")
    parser.add_argument("--unpack-records", type=int, default=10000, help="records of the pack timed for unpacking")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_recordio_crop.json"))
    args = parser.parse_args()
    options = CropOptions(device="cpu", workers=args.workers)
    timings: dict[str, list[tuple[float, float]]] = {
        "crop 250x250 originals": [],
        "unpack": [],
        "crop 112x112 unpacked": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        originals = work / "lfw"
        originals.mkdir()
        count = link_subset(Path(args.lfw), originals, args.images)

        def crop_originals(number: int) -> None:
            out = work / f"lfw-crops-{number}"
            timings["crop 250x250 originals"].append(timed(lambda: crop_tree(originals, out, options)))

        crop_originals(0)  # its landmarks align the faces; later rounds interleave with the 112x112 crops
        detections = pd.read_parquet(work / "lfw-crops-0" / "detections.parquet")
        people = aligned_faces(originals, detections, args.quality)
        (work / "pack").mkdir()
        (work / "large").mkdir()
        packed = write_recordio_pack(work / "pack" / "train.rec", people)
        copies = -(-args.unpack_records // packed["images"])  # the faces again under new labels
        large = write_recordio_pack(work / "large" / "train.rec", people * copies)
        jpeg_bytes = [len(data) for group in people for data in group]
        for number in range(args.repeats):
            if number:
                crop_originals(number)
            unpacked, crops, timed_unpack = work / f"unpacked-{number}", work / f"crops-{number}", work / "timed"
            timings["unpack"].append(
                timed(lambda t=timed_unpack: unpack_recordio(work / "large" / "train.rec", t, progress=False))
            )
            shutil.rmtree(timed_unpack)
            unpack_recordio(work / "pack" / "train.rec", unpacked, progress=False)
            timings["crop 112x112 unpacked"].append(timed(lambda u=unpacked, c=crops: crop_tree(u, c, options)))
        table = pd.read_parquet(work / "crops-0" / "detections.parquet")
        png_bytes = [p.stat().st_size for p in (work / "crops-0").rglob("*.png")]
    images = packed["images"]
    found = table[table["status"] == "ok"]
    side = (found["x2"] - found["x1"]).to_numpy()
    edges = {
        "top": found["crop_y1"] <= 0,
        "bottom": found["crop_y2"] >= 112,
        "left": found["crop_x1"] <= 0,
        "right": found["crop_x2"] >= 112,
    }
    clipped = edges["top"] | edges["bottom"] | edges["left"] | edges["right"]
    medians = {name: statistics.median(wall for wall, _ in values) for name, values in timings.items()}
    cpu = {name: statistics.median(used for _, used in values) for name, values in timings.items()}
    counts = {"crop 250x250 originals": count, "unpack": large["images"], "crop 112x112 unpacked": images}
    rates = {name: counts[name] / medians[name] for name in medians}
    cpu_ms = {name: 1e3 * cpu[name] / counts[name] for name in cpu}
    detected = len(found) / images
    mean_png = float(np.mean(png_bytes))
    glint = {
        "unpack_hours_wall": GLINT_IMAGES / rates["unpack"] / 3600,
        "unpack_cpu_hours": GLINT_IMAGES * cpu_ms["unpack"] / 3.6e6,
        "crop_hours_wall": GLINT_IMAGES / rates["crop 112x112 unpacked"] / 3600,
        "crop_cpu_hours": GLINT_IMAGES * cpu_ms["crop 112x112 unpacked"] / 3.6e6,
        "crops": round(GLINT_IMAGES * detected),
        "crops_terabytes": GLINT_IMAGES * detected * mean_png / 1e12,
        "unpacked_jpeg_gigabytes_at_this_quality": GLINT_IMAGES * float(np.mean(jpeg_bytes)) / 1e9,
    }
    ratio = rates["crop 112x112 unpacked"] / rates["crop 250x250 originals"]
    cpu_ratio = cpu_ms["crop 250x250 originals"] / cpu_ms["crop 112x112 unpacked"]
    workers = options.resolved_workers()
    print(f"CPU: {cpu_name()}; {workers} crop processes; median of {args.repeats}")
    print(f"{'stage':<26} {'images':>7} {'median s':>9} {'img/s':>8} {'CPU ms/img':>11}")
    for name, seconds in medians.items():
        print(f"{name:<26} {counts[name]:>7} {seconds:>9.2f} {rates[name]:>8.1f} {cpu_ms[name]:>11.1f}")
    print(f"crop speed 112x112 vs 250x250 in this run: {ratio:.2f}x by wall time, {cpu_ratio:.2f}x by CPU time")
    statuses = table["status"].value_counts().to_dict()
    print(f"112x112 inputs: {len(found)}/{images} faces found ({detected:.1%}), statuses {statuses}")
    print(f"  detector box side: median {np.median(side):.1f} px of 112, range {side.min():.1f}-{side.max():.1f}")
    height = (found["y2"] - found["y1"]).to_numpy()
    crop_w = (found["crop_x2"] - found["crop_x1"]).to_numpy()
    crop_h = (found["crop_y2"] - found["crop_y1"]).to_numpy()
    aspect = crop_h / crop_w
    print(
        f"  detector box height: median {np.median(height):.1f} px; lowest score {found['score'].min():.3f}; "
        f"crop box median {np.median(crop_w):.0f}x{np.median(crop_h):.0f} px, height/width "
        f"{aspect.min():.2f}-{aspect.max():.2f} (median {np.median(aspect):.2f}), stretched to 224x224"
    )
    print(
        f"  crop box cut by the image border: {clipped.mean():.1%} "
        f"({', '.join(f'{edge} {mask.mean():.1%}' for edge, mask in edges.items())})"
    )
    print(
        f"  mean PNG at 224 (level 1): {mean_png / 1e3:.1f} KB; mean aligned JPEG: {np.mean(jpeg_bytes) / 1e3:.1f} KB"
    )
    print(
        f"glint360k ({GLINT_IMAGES:,} images, {GLINT_IDENTITIES:,} identities): "
        f"unpack {glint['unpack_hours_wall']:.1f} h, crop {glint['crop_hours_wall']:.1f} h on these {workers} "
        f"processes ({glint['crop_cpu_hours']:.0f} CPU-hours), "
        f"{glint['crops_terabytes']:.2f} TB of PNGs"
    )
    atomic_write_json(
        args.out,
        {
            "cpu": cpu_name(),
            "crop_processes": workers,
            "repeats": args.repeats,
            "lfw_images": count,
            "aligned_images": images,
            "unpack_records": large["images"],
            "crop_speed_112_over_250_wall": ratio,
            "crop_speed_112_over_250_cpu": cpu_ratio,
            "cpu_ms_per_image": cpu_ms,
            "seconds": timings,
            "images_per_second": rates,
            "detected_fraction": detected,
            "statuses": table["status"].value_counts().to_dict(),
            "box_side_median": float(np.median(side)),
            "box_height_median": float(np.median(height)),
            "lowest_score": float(found["score"].min()),
            "crop_box_median_wh": [float(np.median(crop_w)), float(np.median(crop_h))],
            "crop_box_aspect_range": [float(aspect.min()), float(np.median(aspect)), float(aspect.max())],
            "crop_box_clipped_fraction": float(clipped.mean()),
            "crop_box_clipped_by_edge": {edge: float(mask.mean()) for edge, mask in edges.items()},
            "mean_png_bytes": mean_png,
            "mean_jpeg_bytes": float(np.mean(jpeg_bytes)),
            "glint360k": glint,
        },
    )


if __name__ == "__main__":
    main()
