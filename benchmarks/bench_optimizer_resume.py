"""Epochs chained through epoch_<e>.pt: optimiser state carried over (now) vs started fresh each epoch
(before train STAGE_VERSION 4), same data, seed and triplets; held-out accuracy per epoch.

The demo recipe (ResNet-18, 64 px, 128-d, 20 steps x 36 triplets from 12 identities, cosine
schedule) on the demo's synthetic people, without the MTCNN crop (the generated photos are
resized as they are): 60 training identities x 8 pictures, 200 pairs over 20 held-out ones.

    .venv/bin/python benchmarks/bench_optimizer_resume.py [--optimizer adam] [--epochs 4] [--steps 20]
        [--batch_size 36] [--image_size 64]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from facenet_core.config import Config, EvalSet
from facenet_core.data.manifest import build_manifest, read_manifest
from facenet_core.data.triplets import generate_triplets, save_triplets
from facenet_core.env import disable_telemetry
from facenet_core.evaluate.report import evaluate_model
from facenet_core.fileio import atomic_write_json
from facenet_core.synthetic.demo import make_demo_dataset
from facenet_core.train import state as state_module
from facenet_core.train.checkpoints import load_model_from_checkpoint
from facenet_core.train.engine import read_epoch_summary, train_epoch

LEARNING_RATES = {"adam": 1e-3, "adagrad": 0.075, "sgd": 0.01, "rmsprop": 1e-4}


def run(config: Config, data: dict, workdir: Path, carry_optimizer: bool) -> list[dict]:
    """Train config.epochs epochs, each from the previous epoch_<e>.pt, evaluating after each."""
    manifest = read_manifest(data["manifest"])
    params = {
        k: getattr(config, k) for k in ("seed", "iterations_per_epoch", "batch_size", "num_human_identities_per_batch")
    }
    rows, checkpoint = [], None
    fresh = mock.patch.object(state_module, "with_training_state", lambda c, p: (c, Path(p)))
    with contextlib.nullcontext() if carry_optimizer else fresh:
        for epoch in range(config.epochs):
            triplets = generate_triplets(manifest.labels, epoch=epoch, **params)
            path = save_triplets(
                workdir / f"triplets_{epoch}.npy", triplets, {"manifest_fingerprint": manifest.fingerprint}
            )
            started = time.perf_counter()
            checkpoint = train_epoch(config, epoch, path, checkpoint, workdir / "run")
            seconds = time.perf_counter() - started
            model, _ = load_model_from_checkpoint(checkpoint)
            result = evaluate_model(
                model,
                EvalSet(name="eval", root=str(data["eval"]), pairs=str(data["pairs"])),
                image_size=config.image_size,
                mean=config.normalize_mean,
                std=config.normalize_std,
                batch_size=100,
                device="cpu",
            )
            summary = read_epoch_summary(checkpoint)
            rows.append(
                {
                    "epoch": epoch,
                    "optimizer_state": summary.get("optimizer_state", "none (first epoch)"),
                    "loss": summary["loss"],
                    "accuracy": result.metrics["accuracy"],
                    "roc_auc": result.metrics["roc_auc"],
                    "train_seconds": round(seconds, 1),
                }
            )
            print(f"  {'carried' if carry_optimizer else 'fresh'} epoch {epoch}: {rows[-1]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adam", choices=sorted(LEARNING_RATES))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="iterations per epoch")
    parser.add_argument("--batch_size", type=int, default=36, help="triplets per step")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/optimizer_resume.json")
    args = parser.parse_args()
    disable_telemetry()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="bench-optimizer-") as tmp:
        tmp = Path(tmp)
        data = make_demo_dataset(
            tmp / "data", num_train_identities=60, num_eval_identities=20, images_per_identity=8, seed=0,
            pairs_per_fold=10, image_size=96,
        )  # fmt: skip
        data["manifest"] = tmp / "manifest.parquet"
        build_manifest(data["train"], data["manifest"], workers=1, progress=False)
        config = Config(
            manifest_path=str(data["manifest"]), model_architecture="resnet18", embedding_dimension=128,
            image_size=args.image_size, epochs=args.epochs, iterations_per_epoch=args.steps, batch_size=args.batch_size,
            num_human_identities_per_batch=12, optimizer=args.optimizer, learning_rate=LEARNING_RATES[args.optimizer],
            lr_schedule={"type": "cosine"}, num_workers=0, device="cpu", log_every_n_steps=args.steps, seed=0,
        )  # fmt: skip
        results = {}
        for carry in (True, False):
            results["carried" if carry else "fresh"] = run(config, data, tmp / ("carried" if carry else "fresh"), carry)
    print(f"\n{args.optimizer}: epoch | carried: loss accuracy auc | fresh each epoch: loss accuracy auc")
    for a, b in zip(results["carried"], results["fresh"], strict=True):
        print(
            f"{a['epoch']:5d} | {a['loss']:.4f} {a['accuracy']:.3f} {a['roc_auc']:.3f}"
            f" | {b['loss']:.4f} {b['accuracy']:.3f} {b['roc_auc']:.3f}"
        )
    settings = {k: getattr(args, k) for k in ("optimizer", "epochs", "steps", "batch_size", "image_size")}
    atomic_write_json(args.out, {"cpu": platform.processor() or platform.machine(), **settings, **results})


if __name__ == "__main__":
    main()
