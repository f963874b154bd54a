"""The per-rank entry point torchrun starts: `python -m facenet_core.train.worker --config ...`."""

from __future__ import annotations

import argparse
import json
import sys

import torch.distributed as dist

from facenet_core.config.loading import load_config
from facenet_core.env import disable_telemetry
from facenet_core.train.engine import train_epoch


def _append_metrics(path: str):
    def on_metrics(metrics: dict[str, float], step: int) -> None:
        with open(path, "a") as handle:
            handle.write(json.dumps({"step": step, "metrics": metrics}) + "\n")

    return on_metrics


def main(argv: list[str] | None = None) -> int:
    """Train one epoch as this rank of the torchrun job."""
    disable_telemetry()
    parser = argparse.ArgumentParser(prog="facenet_core.train.worker", description=__doc__)
    parser.add_argument("--config", required=True, help="resolved config YAML")
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--checkpoint_in")
    parser.add_argument("--metrics", help="JSON-lines file rank 0 appends step metrics to")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        train_epoch(
            config,
            args.epoch,
            args.index,
            args.checkpoint_in,
            args.run_dir,
            on_metrics=_append_metrics(args.metrics) if args.metrics else None,
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
