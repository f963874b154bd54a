"""Synthetic demo faces: rendering speed and how often this project's MTCNN finds them.

Rendering: median milliseconds per 250x250 JPEG (paint + camera effects + encode) over rounds,
one thread. Detection: fraction of pictures where MTCNN (min face 20, thresholds 0.6/0.7/0.7)
finds at least one face, per seed and overall, with the median detected box width.

    .venv/bin/python benchmarks/bench_synthetic.py
    .venv/bin/python benchmarks/bench_synthetic.py --seeds 0 1 2 --identities 60 --images 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facenet_core.env import disable_telemetry  # noqa: E402
from facenet_core.fileio import atomic_write_json  # noqa: E402
from facenet_core.synthetic.render import identity_shape, render_image  # noqa: E402


def render_ms(rounds: int, images: int) -> float:
    """Median over rounds of the mean milliseconds to render one picture."""
    shape = identity_shape(0, 0)
    timings = []
    for r in range(rounds):
        start = time.perf_counter()
        for n in range(1, images + 1):
            render_image(r, 0, n, 250, shape)
        timings.append((time.perf_counter() - start) * 1000 / images)
    return statistics.median(timings)


def detection(seed: int, identities: int, images: int, batch_size: int) -> dict[str, float]:
    """Share of pictures with a detected face and the median box width, for one seed."""
    from facenet_core.detect.detector import MTCNN

    detector = MTCNN()
    pictures = [
        np.asarray(Image.open(io.BytesIO(render_image(seed, i, n))).convert("RGB"))
        for i in range(identities)
        for n in range(1, images + 1)
    ]
    found, widths = [], []
    for k in range(0, len(pictures), batch_size):
        for faces in detector.detect(pictures[k : k + batch_size]):
            found.append(len(faces.boxes) > 0)
            widths.extend([float(faces.boxes[0, 2] - faces.boxes[0, 0])] if len(faces.boxes) else [])
    return {"images": len(found), "detected": int(sum(found)), "median_box_width": statistics.median(widths)}


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 11, 21])
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--images", type=int, default=5, help="pictures per identity")
    parser.add_argument("--rounds", type=int, default=5, help="rendering rounds")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=16)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    results: dict = {"render_ms_per_image": render_ms(args.rounds, 20), "detection": {}}
    print(f"render: {results['render_ms_per_image']:.1f} ms per 250x250 JPEG (median of {args.rounds} rounds)")
    print(f"{'seed':>6} {'images':>7} {'detected':>9} {'rate':>7} {'box px':>7}")
    for seed in args.seeds:
        row = detection(seed, args.identities, args.images, args.batch_size)
        results["detection"][str(seed)] = row
        rate = row["detected"] / row["images"]
        print(f"{seed:>6} {row['images']:>7} {row['detected']:>9} {rate:>7.3f} {row['median_box_width']:>7.0f}")
    total = sum(r["images"] for r in results["detection"].values())
    hits = sum(r["detected"] for r in results["detection"].values())
    results["detection_rate"] = hits / total
    print(f"{'all':>6} {total:>7} {hits:>9} {hits / total:>7.3f}")
    atomic_write_json(REPO / "benchmarks" / "results" / "synthetic.json", results)


if __name__ == "__main__":
    main()
