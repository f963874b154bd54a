"""LFW evaluation on CPU: embedding and metrics timed separately, ours vs the seed's way, same run.

Embedding: ours embeds each unique image once (`embed_images`); the seed's way loads both images of
every pair and runs two forward passes per batch of pairs. Both use the same model (ResNet-34, 140 px,
512-d, random weights: speed does not depend on them), the same batch size and the same files. On a
shared CPU a subset of the 6,000 pairs (every k-th pair, so all folds are represented) is timed and
the per-image time extrapolated to the full file: 7,701 unique images for ours, 12,000 for the seed.

Metrics: the full 6,000-pair problem (real labels and folds, seeded random distances) through the
vectorised `kfold_metrics` and through the test suite's direct loop over thresholds (the seed's
definitions, one pass over the pairs per threshold and fold); median of several runs; the two
results are checked equal.

    .venv/bin/python benchmarks/bench_evaluate.py [--pairs 600] [--embed_runs 1] [--metric_runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from facenet_core.env import disable_telemetry
from facenet_core.evaluate.embed import embed_images, pair_distances
from facenet_core.evaluate.metrics import kfold_metrics
from facenet_core.evaluate.pairs import read_pairs, resolve_pairs
from facenet_core.fileio import atomic_write_json
from facenet_core.models import create_model

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw"
MEAN, STD = [0.6071, 0.4609, 0.3944], [0.2457, 0.2175, 0.2129]


def loop_reference():
    """The direct loop implementation the test suite checks the vectorised metrics against."""
    spec = importlib.util.spec_from_file_location("loop_metrics", REPO / "tests" / "evaluate" / "test_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.loop_kfold


class SeedPairs(Dataset):
    """The seed's LFW dataset shape: both images of a pair decoded and transformed per item."""

    def __init__(self, left: list[Path], right: list[Path], issame: np.ndarray, image_size: int):
        self.left, self.right, self.issame = left, right, issame
        self.transform = T.Compose([T.Resize(size=image_size), T.ToTensor(), T.Normalize(mean=MEAN, std=STD)])

    def __len__(self) -> int:
        return len(self.issame)

    def __getitem__(self, i: int):
        return self.transform(Image.open(self.left[i])), self.transform(Image.open(self.right[i])), self.issame[i]


@torch.inference_mode()
def seed_way(model, left, right, issame, image_size, batch_size) -> np.ndarray:
    """Two forward passes per batch of pairs, Euclidean distance per pair."""
    distances = []
    for a, b, _ in DataLoader(SeedPairs(left, right, issame, image_size), batch_size=batch_size, shuffle=False):
        distances.append(torch.nn.functional.pairwise_distance(model(a), model(b)).numpy())
    return np.concatenate(distances)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(LFW), help="folder with lfw-deepfunneled/ and pairs.txt")
    parser.add_argument("--pairs", type=int, default=600, help="pairs timed for embedding (6000: all)")
    parser.add_argument("--architecture", default="resnet34")
    parser.add_argument("--image_size", type=int, default=140)
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--embed_runs", type=int, default=1)
    parser.add_argument("--metric_runs", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/evaluate.json")
    args = parser.parse_args()

    lfw = Path(args.lfw)
    full = resolve_pairs(read_pairs(lfw / "pairs.txt"), lfw / "lfw-deepfunneled")
    step = max(len(full.pairs) // args.pairs, 1)
    subset = resolve_pairs(full.pairs.select(full.pairs.index % step == 0), lfw / "lfw-deepfunneled")
    torch.manual_seed(0)
    model = create_model(args.architecture, 512).eval()
    with torch.inference_mode():
        model(torch.zeros(2, 3, args.image_size, args.image_size))  # warm-up outside the timings
    ours_s, seed_s = [], []
    for _ in range(args.embed_runs):
        seconds, embeddings = timed(
            embed_images,
            model,
            subset.images,
            image_size=args.image_size,
            mean=MEAN,
            std=STD,
            batch_size=args.batch_size,
            device="cpu",
        )
        ours_s.append(seconds)
        left = [subset.images[i] for i in subset.left]
        right = [subset.images[i] for i in subset.right]
        seconds, seed_distances = timed(
            seed_way, model, left, right, subset.pairs.issame, args.image_size, args.batch_size
        )
        seed_s.append(seconds)
    ours_distances = pair_distances(embeddings.vectors, subset.left, subset.right)
    per_image_ours = statistics.median(ours_s) / len(subset.images)
    per_image_seed = statistics.median(seed_s) / (2 * len(subset.pairs))

    rng = np.random.default_rng(0)
    issame, folds = full.pairs.issame, full.pairs.folds(10)
    distances = np.clip(rng.normal(1.0, 0.25, len(issame)) - 0.3 * issame, 0, 3.99)
    loop_kfold = loop_reference()
    vec_s, loop_s = [], []
    for _ in range(args.metric_runs):
        seconds, vectorised = timed(kfold_metrics, distances, issame, folds)
        vec_s.append(seconds)
        seconds, looped = timed(loop_kfold, distances, issame)
        loop_s.append(seconds)
    same_metrics = all(
        np.allclose(getattr(vectorised, key), looped[key], rtol=0, atol=1e-12)
        for key in ("accuracy", "precision", "recall", "thresholds", "tar", "far", "tpr", "fpr")
    )

    result = {
        "architecture": args.architecture,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "timed_pairs": len(subset.pairs),
        "timed_unique_images": len(subset.images),
        "embed_seconds_ours": statistics.median(ours_s),
        "embed_seconds_seed": statistics.median(seed_s),
        "full_unique_images": len(full.images),
        "full_pairs": len(full.pairs),
        "full_embed_seconds_ours": per_image_ours * len(full.images),
        "full_embed_seconds_seed": per_image_seed * 2 * len(full.pairs),
        "distances_max_abs_diff": float(np.max(np.abs(ours_distances - seed_distances))),
        "metrics_seconds_ours": statistics.median(vec_s),
        "metrics_seconds_loop": statistics.median(loop_s),
        "metrics_equal": bool(same_metrics),
        "embed_runs": args.embed_runs,
        "metric_runs": args.metric_runs,
        "torch_threads": torch.get_num_threads(),
    }
    result["embed_ratio"] = result["full_embed_seconds_seed"] / result["full_embed_seconds_ours"]
    result["metrics_ratio"] = result["metrics_seconds_loop"] / result["metrics_seconds_ours"]
    total_ours = result["full_embed_seconds_ours"] + result["metrics_seconds_ours"]
    total_seed = result["full_embed_seconds_seed"] + result["metrics_seconds_loop"]
    result["total_ratio"] = total_seed / total_ours

    print(
        f"{args.architecture} {args.image_size} px, batch {args.batch_size}, CPU ({torch.get_num_threads()} threads); "
        f"embedding timed on {len(subset.pairs)} pairs ({len(subset.images)} unique images), "
        f"extrapolated to {len(full.pairs)} pairs"
    )
    print(f"{'stage':<34} {'ours (s)':>10} {'seed way (s)':>13} {'ratio':>7}")
    print(
        f"{'embedding, timed subset':<34} {result['embed_seconds_ours']:>10.1f} "
        f"{result['embed_seconds_seed']:>13.1f} {result['embed_seconds_seed'] / result['embed_seconds_ours']:>7.2f}"
    )
    print(
        f"{'embedding, full LFW (extrapolated)':<34} {result['full_embed_seconds_ours']:>10.1f} "
        f"{result['full_embed_seconds_seed']:>13.1f} {result['embed_ratio']:>7.2f}"
    )
    print(
        f"{'metrics, 6000 pairs (median)':<34} {result['metrics_seconds_ours']:>10.4f} "
        f"{result['metrics_seconds_loop']:>13.2f} {result['metrics_ratio']:>7.0f}"
    )
    print(f"{'total, full LFW':<34} {total_ours:>10.1f} {total_seed:>13.1f} {result['total_ratio']:>7.2f}")
    print(
        f"same distances: max |diff| {result['distances_max_abs_diff']:.2e}; "
        f"vectorised metrics equal the loop: {same_metrics}"
    )
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
