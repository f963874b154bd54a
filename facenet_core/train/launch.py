"""run_train_epoch: train_epoch in this process, or under torchrun when num_processes > 1.

The torchrun job runs facenet_core.train.worker on every rank; rank 0 appends each step's metrics
to a JSON-lines file that this process follows and hands to `on_metrics`, so callers see the same
callbacks either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from facenet_core.config.loading import save_config
from facenet_core.config.schema import Config
from facenet_core.train.engine import MetricsCallback, train_epoch
from facenet_core.workspace import RunLayout

POLL_SECONDS = 1.0


def torchrun_command(config: Config, worker_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run ...` for this config (single-node standalone or rendezvous)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(config.num_processes)]
    if config.nnodes > 1:
        if not config.rdzv_endpoint:
            raise ValueError(f"nnodes={config.nnodes} needs rdzv_endpoint (host:port of the rendezvous)")
        command += ["--nnodes", str(config.nnodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", config.rdzv_endpoint]
    else:
        command += ["--standalone"]
    return [*command, "-m", "facenet_core.train.worker", *worker_args]


def _follow(path: Path, position: int, on_metrics: MetricsCallback | None) -> int:
    """Hand every complete new line of `path` to `on_metrics`; returns the new read position."""
    if on_metrics is None or not path.is_file():
        return position
    with open(path, "rb") as handle:
        handle.seek(position)
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    for line in complete.splitlines():
        record = json.loads(line)
        on_metrics(record["metrics"], record["step"])
    return position + len(complete)


def run_train_epoch(
    config: Config,
    epoch: int,
    index_path: str | os.PathLike,
    checkpoint_in: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    on_metrics: MetricsCallback | None = None,
) -> Path:
    """Same contract as train_epoch; starts a torchrun job when config.num_processes > 1 or nnodes > 1."""
    if config.num_processes == 1 and config.nnodes == 1:
        return train_epoch(config, epoch, index_path, checkpoint_in, run_dir, on_metrics)
    layout = RunLayout(Path(run_dir))
    config_path = save_config(config, layout.launch_config(epoch))
    metrics_path = layout.launch_metrics(epoch)
    metrics_path.unlink(missing_ok=True)
    worker_args = [
        "--config",
        str(config_path),
        "--epoch",
        str(epoch),
        "--index",
        str(index_path),
        "--run_dir",
        str(run_dir),
        "--metrics",
        str(metrics_path),
    ]
    if checkpoint_in:
        worker_args += ["--checkpoint_in", str(checkpoint_in)]
    process = subprocess.Popen(torchrun_command(config, worker_args))
    position = 0
    while process.poll() is None:
        time.sleep(POLL_SECONDS)
        position = _follow(metrics_path, position, on_metrics)
    _follow(metrics_path, position, on_metrics)
    if process.returncode != 0:
        raise RuntimeError(f"torchrun training of epoch {epoch} failed with exit code {process.returncode}")
    out = layout.epoch_checkpoint(epoch)
    if not out.is_file():
        raise RuntimeError(f"torchrun finished epoch {epoch} but {out} was not written")
    return out
