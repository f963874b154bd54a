"""LFW evaluation end to end on CPU: `facenet evaluate` against the seed's way at its defaults, same run.

Both sides evaluate the same pairs (every k-th pair of pairs.txt, 600 by default, written as a pairs
file of 10 folds) on the raw deep-funneled 250x250 JPEGs as they are (resized to 140 px, no crop),
with the same random ResNet-34 checkpoint in the seed's format (speed does not depend on weights),
each timed from the checkpoint file to the metrics:

- the seed's way (its validate_lfw with its defaults): torch.load and load_state_dict; its LFW
  dataset (a torchvision ImageFolder over the LFW folder; per pair both images loaded by PIL and
  transformed with Resize(140), ToTensor, Normalize(its mean/std)); a DataLoader of 200 pairs per
  batch (lfw_batch_size) with 4 worker processes (num_workers); model(a) and model(b) per batch
  under no_grad; PairwiseDistance; then the metrics, computed here with our `kfold_metrics` (the
  seed's definitions, checked equal to its loop in tests/evaluate/test_metrics.py; milliseconds);
- ours: `facenet evaluate --checkpoint C --lfw L --cropped --pairs P --json --device cpu` in this
  process, every other option at its default.

Runs alternate (seed, ours, seed, ours, ...); the table gives each side's median, the ratio, each
run's CPU seconds (all threads and the seed's worker processes: what load on a shared machine does
not inflate as much as wall time), both accuracies and the largest difference between the two
sides' pair distances (ours recomputed untimed with `embed_images` at the command's defaults, for the
pairs among the first --parity_images images).
Every k-th pair shares few images (600 pairs: 1,163 unique of 1,200); the whole file shares many
(7,701 of 12,000): a last line extrapolates both medians per image to it.

Then the metrics alone on the full 6,000-pair problem (real labels and folds, seeded random
distances): `kfold_metrics` against the test suite's direct loop over thresholds (the seed's
definitions), median of --metric_runs.

    .venv/bin/python benchmarks/bench_evaluate.py [--pairs 600] [--runs 3] [--metric_runs 5] [--parity_images 1200]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name
from torch.nn import PairwiseDistance
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from facenet_core.config.schema import Config
from facenet_core.env import disable_telemetry
from facenet_core.evaluate.embed import embed_images, pair_distances
from facenet_core.evaluate.metrics import kfold_metrics
from facenet_core.evaluate.pairs import read_pairs, resolve_pairs
from facenet_core.fileio import atomic_write_json
from facenet_core.models import create_model
from flows.cli import main as facenet

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw"
SEED_MEAN, SEED_STD = [0.6071, 0.4609, 0.3944], [0.2457, 0.2175, 0.2129]
SEED_LFW_BATCH_SIZE, SEED_NUM_WORKERS = 200, 4


class SeedLFWDataset(datasets.ImageFolder):
    """The seed's LFWDataset: an ImageFolder over the LFW folder; an item is a pair's two transformed
    images and its label, loaded by the ImageFolder loader (PIL, converted to RGB)."""

    def __init__(self, root: str, pairs_path: str, transform):
        super().__init__(root, transform)
        self.validation_images = []
        with open(pairs_path) as f:
            for line in f.readlines()[1:]:
                pair = line.strip().split()
                if len(pair) == 3:
                    path0, path1 = self.image(root, pair[0], pair[1]), self.image(root, pair[0], pair[2])
                else:
                    path0, path1 = self.image(root, pair[0], pair[1]), self.image(root, pair[2], pair[3])
                if os.path.exists(path0) and os.path.exists(path1):
                    self.validation_images.append((path0, path1, len(pair) == 3))

    @staticmethod
    def image(root: str, name: str, number: str) -> str:
        """<root>/<name>/<name>_<nnnn>.jpg, else .png (the seed's add_extension)."""
        stem = os.path.join(root, name, f"{name}_{int(number):04d}")
        return stem + ".jpg" if os.path.exists(stem + ".jpg") else stem + ".png"

    def __getitem__(self, index: int):
        path_1, path_2, issame = self.validation_images[index]
        return self.transform(self.loader(path_1)), self.transform(self.loader(path_2)), issame

    def __len__(self) -> int:
        return len(self.validation_images)


def seed_way(checkpoint: Path, root: Path, pairs_file: Path, image_size: int) -> tuple[float, np.ndarray]:
    """The seed's validate_lfw at its defaults: accuracy and the pair distances."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = create_model(state["model_architecture"], state["embedding_dimension"])
    model.load_state_dict(state["model_state_dict"])
    transform = T.Compose([T.Resize(size=image_size), T.ToTensor(), T.Normalize(mean=SEED_MEAN, std=SEED_STD)])
    loader = DataLoader(
        SeedLFWDataset(str(root), str(pairs_file), transform),
        batch_size=SEED_LFW_BATCH_SIZE,
        num_workers=SEED_NUM_WORKERS,
        shuffle=False,
    )
    model.eval()
    distances, labels = [], []
    with torch.no_grad():
        l2_distance = PairwiseDistance(p=2)
        for data_a, data_b, label in loader:
            output_a, output_b = model(data_a), model(data_b)
            distances.append(l2_distance(output_a, output_b).numpy())
            labels.append(label.numpy())
    distances, issame = np.concatenate(distances), np.concatenate(labels).astype(bool)
    metrics = kfold_metrics(distances.astype(np.float64), issame, read_pairs(pairs_file).folds(10))
    return metrics.summary()["accuracy"], distances


def ours(checkpoint: Path, root: Path, pairs_file: Path) -> float:
    """`facenet evaluate` on the crops as they are, options at their defaults: its accuracy."""
    out = io.StringIO()
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--lfw", str(root), "--cropped"]
    with contextlib.redirect_stdout(out):
        code = facenet([*argv, "--pairs", str(pairs_file), "--json", "--device", "cpu"])
    if code:
        raise SystemExit(f"facenet evaluate failed with exit status {code}")
    return float(json.loads(out.getvalue())["accuracy"])


def write_subset(pairs_txt: Path, every: int, out: Path) -> int:
    """Every `every`-th pair of a 10-fold pairs.txt as a pairs file of its own (10 folds kept)."""
    lines = pairs_txt.read_text().splitlines()
    folds, per_class = (int(x) for x in lines[0].split())
    kept = lines[1::every]
    if (folds * per_class * 2) % every or per_class % every:
        raise SystemExit(f"--pairs must keep whole folds: {every} does not divide {per_class}")
    out.write_text("\n".join([f"{folds}\t{per_class // every}", *kept]) + "\n")
    return len(kept)


def loop_reference():
    """The direct loop implementation the test suite checks the vectorised metrics against."""
    spec = importlib.util.spec_from_file_location("loop_metrics", REPO / "tests" / "evaluate" / "test_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.loop_kfold


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the seed's DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def timed_cpu(fn, *args):
    """Wall seconds, CPU seconds (all threads and finished child processes) and what `fn` returned."""
    cpu = cpu_seconds()
    seconds, out = timed(fn, *args)
    return seconds, cpu_seconds() - cpu, out


def metrics_section(lfw: Path, runs: int) -> dict:
    full = read_pairs(lfw / "pairs.txt")
    issame, folds = full.issame, full.folds(10)
    distances = np.clip(np.random.default_rng(0).normal(1.0, 0.25, len(issame)) - 0.3 * issame, 0, 3.99)
    loop_kfold = loop_reference()
    vec_s, loop_s = [], []
    for _ in range(runs):
        seconds, vectorised = timed(kfold_metrics, distances, issame, folds)
        vec_s.append(seconds)
        seconds, looped = timed(loop_kfold, distances, issame)
        loop_s.append(seconds)
    equal = all(
        np.allclose(getattr(vectorised, key), looped[key], rtol=0, atol=1e-12)
        for key in ("accuracy", "precision", "recall", "thresholds", "tar", "far", "tpr", "fpr")
    )
    return {"seconds_ours": statistics.median(vec_s), "seconds_loop": statistics.median(loop_s), "equal": equal}


def main() -> None:
    disable_telemetry()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(LFW), help="folder with lfw-deepfunneled/ and pairs.txt")
    parser.add_argument("--pairs", type=int, default=600, help="pairs evaluated (every k-th of the 6,000)")
    parser.add_argument("--architecture", default="resnet34")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side, alternating")
    parser.add_argument("--metric_runs", type=int, default=5, help="0 skips the metrics section")
    parser.add_argument("--parity_images", type=int, default=1200, help="images embedded again for the parity check")
    parser.add_argument("--out", default="benchmarks/results/evaluate.json")
    args = parser.parse_args()

    lfw = Path(args.lfw)
    root = lfw / "lfw-deepfunneled"
    image_size = Config().image_size
    with tempfile.TemporaryDirectory() as tmp:
        pairs_file = Path(tmp) / "pairs.txt"
        num_pairs = write_subset(lfw / "pairs.txt", 6000 // args.pairs, pairs_file)
        subset = resolve_pairs(read_pairs(pairs_file), root)
        torch.manual_seed(0)
        model = create_model(args.architecture, 512).eval()
        checkpoint = Path(tmp) / f"model_{args.architecture}.pt"
        state = {"epoch": 0, "embedding_dimension": 512, "model_architecture": args.architecture}
        torch.save({**state, "model_state_dict": model.state_dict()}, checkpoint)
        with torch.inference_mode():  # first-call costs outside the timings, for both layouts
            model(torch.zeros(2, 3, image_size, image_size))
            model(torch.zeros(2, 3, image_size, image_size).contiguous(memory_format=torch.channels_last))

        seed_s, ours_s, seed_cpu, ours_cpu, loads = [], [], [], [], []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            seed_run = timed_cpu(seed_way, checkpoint, root, pairs_file, image_size)
            seconds, cpu, (seed_accuracy, seed_distances) = seed_run
            seed_s.append(seconds)
            seed_cpu.append(cpu)
            seconds, cpu, our_accuracy = timed_cpu(ours, checkpoint, root, pairs_file)
            ours_s.append(seconds)
            ours_cpu.append(cpu)
            print(f"run {len(seed_s)}: seed's way {seed_s[-1]:.1f} s, ours {ours_s[-1]:.1f} s", flush=True)
        loads.append(os.getloadavg()[0])
        # The parity check embeds the images of the first pairs again (untimed): at most --parity_images.
        checked = np.flatnonzero((subset.left < args.parity_images) & (subset.right < args.parity_images))
        defaults = Config()
        embeddings = embed_images(
            model,
            subset.images[: args.parity_images],
            image_size=image_size,
            mean=defaults.normalize_mean,
            std=defaults.normalize_std,
            batch_size=defaults.eval_batch_size,
            device="cpu",
        )
        our_distances = pair_distances(embeddings.vectors, subset.left[checked], subset.right[checked])

    result = {
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "architecture": args.architecture,
        "image_size": image_size,
        "pairs": num_pairs,
        "unique_images_ours": len(subset.images),
        "forward_images_seed": 2 * num_pairs,
        "seconds_seed": seed_s,
        "seconds_ours": ours_s,
        "median_seed": statistics.median(seed_s),
        "median_ours": statistics.median(ours_s),
        "cpu_seconds_seed": seed_cpu,
        "cpu_seconds_ours": ours_cpu,
        "accuracy_seed": seed_accuracy,
        "accuracy_ours": our_accuracy,
        "distances_max_abs_diff": float(np.max(np.abs(our_distances - seed_distances[checked]))),
        "distances_checked_pairs": int(checked.size),
        "load_average_1min": loads,
    }
    result["ratio"] = result["median_seed"] / result["median_ours"]
    full = resolve_pairs(read_pairs(lfw / "pairs.txt"), root)
    result["full_unique_images"], result["full_forward_images_seed"] = len(full.images), 2 * len(full.pairs)
    result["full_extrapolated_ratio"] = (result["median_seed"] / (2 * num_pairs) * 2 * len(full.pairs)) / (
        result["median_ours"] / len(subset.images) * len(full.images)
    )
    print(
        f"{cpu_name()}, torch {torch.get_num_threads()} threads; {args.architecture} {image_size} px; "
        f"{num_pairs} pairs ({len(subset.images)} unique images; the seed's way: {2 * num_pairs} forward images); "
        f"load average {min(loads):.1f}-{max(loads):.1f}"
    )
    print(f"{'side':<40} {'runs (s)':<24} {'median (s)':>10} {'accuracy':>9}")
    for name, runs, accuracy in (
        ("seed's way (4 workers, 200 pairs/batch)", seed_s, seed_accuracy),
        ("facenet evaluate (defaults)", ours_s, our_accuracy),
    ):
        print(f"{name:<40} {' '.join(f'{s:.1f}' for s in runs):<24} {statistics.median(runs):>10.1f} {accuracy:>9.4f}")
    gap = result["distances_max_abs_diff"]
    print(f"ratio (seed / ours): {result['ratio']:.2f}; pair distances max |diff| {gap:.1e} ({checked.size} pairs)")
    cpu_ratio = statistics.median(seed_cpu) / statistics.median(ours_cpu)
    print(
        f"CPU seconds (all threads and worker processes), seed's way {' '.join(f'{s:.1f}' for s in seed_cpu)}, "
        f"ours {' '.join(f'{s:.1f}' for s in ours_cpu)}: ratio of medians {cpu_ratio:.2f}"
    )
    print(
        f"all {len(full.pairs)} pairs, extrapolated per image ({len(full.images)} unique images; the seed's way: "
        f"{2 * len(full.pairs)}): ratio {result['full_extrapolated_ratio']:.2f}"
    )

    if args.metric_runs:
        result["metrics"] = metrics_section(lfw, args.metric_runs)
        m = result["metrics"]
        print(
            f"metrics, 6,000 pairs (median of {args.metric_runs}): kfold_metrics {m['seconds_ours']:.4f} s, "
            f"direct loop {m['seconds_loop']:.2f} s ({m['seconds_loop'] / m['seconds_ours']:.0f}x), equal: {m['equal']}"
        )
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
