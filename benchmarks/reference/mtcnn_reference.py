"""Reference numbers from Sandberg's detect_face.py (TensorFlow), run OUTSIDE the project.

This script runs only in a throwaway virtualenv beside the repository (the default of
benchmarks/bench_crop.py --reference-python); it is never imported by the project. From the
repository root:

    python3 -m venv ../tfref
    ../tfref/bin/pip install tensorflow-cpu numpy opencv-python-headless scipy pillow six
    ../tfref/bin/pip download facenet==1.0.5 --no-deps -d ../tfref/dl
    ../tfref/bin/pip install --no-deps ../tfref/dl/facenet-1.0.5-py3-none-any.whl

    # fixture: detections of the test images (tests/detect/fixtures/reference_lfw.json)
    ../tfref/bin/python benchmarks/reference/mtcnn_reference.py fixture \
        --lfw ../shared/data/lfw/lfw-deepfunneled --out tests/detect/fixtures/reference_lfw.json
    # timing server driven by benchmarks/bench_crop.py: one image at a time, one thread
    ../tfref/bin/python benchmarks/reference/mtcnn_reference.py serve --list files.txt

The image set is defined in reference_images.py (shared with the tests): every 60th LFW image in
sorted order plus larger pictures built from LFW images with OpenCV.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_images import image_sha256, reference_images  # noqa: E402

MINSIZE = 20
THRESHOLDS = [0.6, 0.7, 0.7]
FACTOR = 0.709


def load_detector(threads: int):
    """Sandberg's three networks in a TF1-style session limited to `threads` threads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    sys.modules["tensorflow"] = tf
    from facenet.src.align import detect_face

    config = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    sess = tf.Session(config=config)
    nets = detect_face.create_mtcnn(sess, None)

    def detect(img: np.ndarray):
        return detect_face.detect_face(img, MINSIZE, *nets, THRESHOLDS, FACTOR)

    return detect


def choose(boxes: np.ndarray, height: int, width: int) -> int:
    """align_dataset_mtcnn.py's one-face rule: box area minus twice the squared centre offset."""
    det = boxes[:, 0:4]
    size = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
    centre = np.asarray([height, width]) / 2
    offsets = np.vstack([(det[:, 0] + det[:, 2]) / 2 - centre[1], (det[:, 1] + det[:, 3]) / 2 - centre[0]])
    return int(np.argmax(size - np.sum(np.power(offsets, 2.0), 0) * 2.0))


def record(name: str, img: np.ndarray, boxes: np.ndarray, points: np.ndarray) -> dict:
    height, width = img.shape[:2]
    row = {"name": name, "width": width, "height": height, "n_faces": int(boxes.shape[0]), "sha256": image_sha256(img)}
    if boxes.shape[0] == 0:
        return row
    i = choose(boxes, height, width) if boxes.shape[0] > 1 else 0
    det = boxes[i, 0:4]
    crop = np.zeros(4, dtype=np.int32)
    crop[0] = np.maximum(det[0], 0)
    crop[1] = np.maximum(det[1], 0)
    crop[2] = np.minimum(det[2], width)
    crop[3] = np.minimum(det[3], height)
    row.update(
        box=[float(v) for v in det],
        crop=[int(v) for v in crop],
        score=float(boxes[i, 4]),
        landmarks=[float(v) for v in points[:, i]],
        all_boxes=[[float(v) for v in b] for b in boxes],
    )
    return row


def run_fixture(args: argparse.Namespace) -> None:
    detect = load_detector(threads=args.threads)
    rows = []
    for name, img in reference_images(Path(args.lfw)):
        boxes, points = detect(img)
        rows.append(record(name, img, boxes, points))
    meta = {"minsize": MINSIZE, "thresholds": THRESHOLDS, "factor": FACTOR, "margin": 0, "source": "facenet==1.0.5"}
    lines = ",\n".join(json.dumps(row, separators=(",", ":")) for row in rows)
    Path(args.out).write_text(f'{{"meta":{json.dumps(meta)},\n"images":[\n{lines}\n]}}\n')
    print(f"wrote {len(rows)} rows to {args.out}")


def run_serve(args: argparse.Namespace) -> None:
    """Load the listed images, then time one detection pass per `run` line read from stdin."""
    detect = load_detector(threads=args.threads)
    paths = [line for line in Path(args.list).read_text().splitlines() if line]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    detect(images[0])
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        for img in images:
            detect(img)
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    fixture = sub.add_parser("fixture")
    fixture.add_argument("--lfw", required=True)
    fixture.add_argument("--out", required=True)
    fixture.add_argument("--threads", type=int, default=1)
    serve = sub.add_parser("serve")
    serve.add_argument("--list", required=True)
    serve.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    run_fixture(args) if args.mode == "fixture" else run_serve(args)


if __name__ == "__main__":
    main()
