"""Aligned crops (`crop: aligned`) on real LFW photos: how upright a photo turned in the image plane
comes back, and what the alignment costs against the box crop.

Upright: each of the first `--photos` LFW photos (every 37th in sorted order) is turned by each of
`--angles` degrees (PIL, bicubic, canvas expanded); MTCNN detects the turned photo and the kept
face's 5 landmarks give the similarity onto the ArcFace template. The rotation of that similarity,
less the rotation found for the upright photo and the turn given, is what the alignment leaves of
the turn: MTCNN's landmark error on turned faces (the warp itself is exact, tests/detect/test_align.py).

Cost: per 224-px crop, `aligned_face` (similarity + warpAffine) against `resized_crop` (the mtcnn
method's box resize) on the same photo, interleaved, `--runs` rounds of 500 calls; medians.

    .venv/bin/python benchmarks/bench_align.py [--photos 40] [--angles 25 -40] [--runs 7]

Prints the summary and writes it to benchmarks/results/bench_align.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from facenet_core.detect.align import aligned_face, alignment_matrix, landmark_points  # noqa: E402
from facenet_core.detect.detector import shared_detector  # noqa: E402
from facenet_core.detect.options import CropOptions  # noqa: E402
from facenet_core.detect.select import choose_face, crop_box, resized_crop  # noqa: E402

LFW = Path(os.environ.get("FACENET_LFW_DIR", REPO.parent / "shared" / "data" / "lfw")) / "lfw-deepfunneled"
RESULTS = REPO / "benchmarks" / "results"


def rotation_degrees(matrix: np.ndarray) -> float:
    return math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))


def kept_face(detector, img: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The kept face's raw box and 10 landmark values, or None without a face."""
    [faces] = detector.detect([img])
    if faces.boxes.shape[0] == 0:
        return None
    i = choose_face(faces.boxes, *img.shape[:2])
    return faces.boxes[i], faces.points[i]


def residuals(detector, photos: list[Path], angles: list[float]) -> dict[float, list[float]]:
    left: dict[float, list[float]] = {angle: [] for angle in angles}
    for path in photos:
        photo = Image.open(path).convert("RGB")
        upright = kept_face(detector, np.asarray(photo))
        if upright is None:
            continue
        base = rotation_degrees(alignment_matrix(landmark_points(upright[1]), 224))
        for angle in angles:
            turned = kept_face(detector, np.asarray(photo.rotate(angle, resample=Image.BICUBIC, expand=True)))
            if turned is not None:
                found = rotation_degrees(alignment_matrix(landmark_points(turned[1]), 224))
                left[angle].append(found - base - angle)
    return left


def per_call_us(fn, calls: int = 500) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--angles", type=float, nargs="+", default=[25.0, -40.0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    options = CropOptions()
    detector = shared_detector("cpu", options.min_face_size, options.thresholds, options.factor, options.batch_pixels)
    photos = sorted(LFW.glob("*/*.jpg"))[::37][: args.photos]
    left = residuals(detector, photos, args.angles)
    img = np.asarray(Image.open(photos[0]).convert("RGB"))
    box, points = kept_face(detector, img)
    crop = crop_box(box, 0, *img.shape[:2])
    landmarks = landmark_points(points)
    aligned_us, resize_us = [], []
    for _ in range(args.runs):
        resize_us.append(per_call_us(lambda: resized_crop(img, crop, 224)))
        aligned_us.append(per_call_us(lambda: aligned_face(img, landmarks, 224)))
    summary = {
        "photos": len(photos),
        "left_of_the_turn_degrees": {
            f"{angle:g}": {
                "faces": len(values),
                "median": round(statistics.median(values), 2),
                "median_abs": round(statistics.median(abs(v) for v in values), 2),
                "max_abs": round(max(abs(v) for v in values), 2),
            }
            for angle, values in left.items()
        },
        "aligned_face_us": round(statistics.median(aligned_us), 1),
        "resized_crop_us": round(statistics.median(resize_us), 1),
        "aligned_over_resized": round(statistics.median(aligned_us) / statistics.median(resize_us), 2),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_align.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
