"""One training epoch: the unit of caching and resume (docs/ARCHITECTURE.md).

train_epoch(config, epoch, index_path, checkpoint_in, run_dir) trains on the epoch's index file
(triplets or P x K batches) and writes runs/<key>/checkpoints/epoch_<e>.pt (weights), last.pt (full
state) and epoch_<e>.json (the epoch summary). Under torchrun it is one rank of a DDP job.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from facenet_core.config.schema import Config
from facenet_core.fileio import atomic_write_json
from facenet_core.train.checkpoints import prune_epochs, save_checkpoint, weights_only_state
from facenet_core.train.distributed import DistContext, init_from_env
from facenet_core.train.state import TrainingState, build_state, checkpoint_state
from facenet_core.train.step import MetricSums, StepOptions, make_scaler, resolve_amp, step_metrics, train_step
from facenet_core.workspace import RunLayout

# Bumped whenever an epoch trained from the same inputs would write other files or weights (part
# of the orchestration's cache key). 2: augmentations seeded per triplet row; 3: SyncBatchNorm
# across GPUs (DDP on CUDA); 4: an epoch that follows a per-epoch file restores the optimiser from
# last.pt or best.pt (it started fresh every epoch).
STAGE_VERSION = 4

MetricsCallback = Callable[[dict[str, float], int], None]


def summary_path(checkpoint_path: str | os.PathLike) -> Path:
    """epoch_<e>.json beside epoch_<e>.pt."""
    return Path(checkpoint_path).with_suffix(".json")


def read_epoch_summary(checkpoint_path: str | os.PathLike) -> dict[str, Any]:
    """The summary train_epoch wrote for the epoch of `checkpoint_path`."""
    return json.loads(summary_path(checkpoint_path).read_text())


def _open_loader(config: Config, epoch: int, index_path: str | os.PathLike, ctx: DistContext):
    """The epoch's loader as config.sampling says: triplet batches (anchors, positives, negatives,
    labels (B, 3)) or PK batches (images, labels (B,)), this rank's share of each global batch."""
    from facenet_core.data.loader import make_pk_loader, make_triplet_loader
    from facenet_core.data.manifest import read_manifest
    from facenet_core.data.pk_batches import load_pk_batches
    from facenet_core.data.triplets import load_triplets

    if not config.manifest_path:
        raise ValueError(f"manifest_path must name the manifest (.parquet) the {config.sampling} index")
    manifest = read_manifest(config.manifest_path)
    common = {
        "image_size": config.image_size,
        "mean": config.normalize_mean,
        "std": config.normalize_std,
        "num_workers": config.num_workers,
        "seed": config.seed,
        "epoch": epoch,
        "rank": ctx.rank,
        "world_size": ctx.world_size,
    }
    if config.sampling == "pk":
        batches = load_pk_batches(
            index_path, manifest.fingerprint, pk_identities=config.pk_identities, pk_images=config.pk_images
        )
        return make_pk_loader(manifest, batches, pk_images=config.pk_images, **common)
    triplets = load_triplets(index_path, manifest.fingerprint)
    return make_triplet_loader(manifest, triplets, batch_size=config.batch_size, **common)


def run_steps(
    state: TrainingState,
    batches: Iterable,
    options: StepOptions,
    device: torch.device,
    *,
    log_every: int,
    first_step: int,
    on_metrics: MetricsCallback | None = None,
    progress: bool = False,
    total: int | None = None,
) -> dict[str, Any]:
    """Train over `batches`; every `log_every` steps read the device sums once and report them.

    Reports step_metrics and learning_rate; returns the epoch's: step_metrics over every step, the
    totals (active, considered, images, steps; with the seed's selection also triplets), seconds,
    images_per_second_per_device, learning_rate and mining.
    """
    scaler = make_scaler(options.amp_dtype, device)
    interval, epoch = MetricSums(device), MetricSums(device)
    # disable=None: the bar is drawn only when stderr is a terminal, never into logs.
    bar = tqdm(total=total, disable=None if progress else True, unit="step", dynamic_ncols=True)
    started = tick = time.perf_counter()
    step = first_step
    last_lr = state.optimizer.param_groups[0]["lr"]

    def flush() -> None:
        nonlocal tick
        values = interval.read()
        if not values["steps"]:
            return
        now = time.perf_counter()
        metrics = {**step_metrics(values, now - tick, options.mining), "learning_rate": last_lr}
        tick = now
        bar.set_postfix(
            loss=f"{metrics['loss']:.4f}",
            active=f"{metrics['active_fraction']:.2f}",
            img_s=f"{metrics['images_per_second']:.0f}",
        )
        if on_metrics is not None:
            on_metrics(metrics, step)

    state.model.train()
    for batch in batches:
        last_lr = state.optimizer.param_groups[0]["lr"]
        stats = train_step(state.model, state.optimizer, scaler, batch, options, device)
        interval.add(stats)
        epoch.add(stats)
        state.scheduler.step()
        step += 1
        bar.update(1)
        if (step - first_step) % log_every == 0:
            flush()
    flush()
    bar.close()
    seconds = time.perf_counter() - started
    totals = epoch.read()
    summary = step_metrics(totals, seconds, options.mining)
    if options.mining == "seed":
        summary["triplets"] = totals["considered"]
    return {
        **summary,
        **{key: totals[key] for key in ("active", "considered", "images", "steps")},
        "seconds": seconds,
        "images_per_second_per_device": summary["images_per_second"] / options.world_size,
        "learning_rate": last_lr,
        "mining": options.mining,
    }


def synchronised_batchnorm(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """On several GPUs, BatchNorm layers normalise over the global batch (SyncBatchNorm, the same
    parameters and buffers); on CPU each rank keeps its own statistics (gloo has no SyncBatchNorm)."""
    if ctx.distributed and ctx.device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _wrap(state: TrainingState, config: Config, ctx: DistContext) -> None:
    state.model = synchronised_batchnorm(state.model, ctx)
    if ctx.distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        state.model = DistributedDataParallel(state.model, device_ids=device_ids)
    if config.compile:
        state.model = torch.compile(state.model)


def train_epoch(
    config: Config,
    epoch: int,
    index_path: str | os.PathLike,
    checkpoint_in: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    on_metrics: MetricsCallback | None = None,
) -> Path:
    """Train epoch `epoch` (0-based) from `checkpoint_in` (None: fresh model) on the epoch's index file
    (triplets or P x K batches).

    Returns runs/<key>/checkpoints/epoch_<e>.pt. Rank 0 writes every file; the others wait for it.
    """
    ctx = init_from_env(config.device)
    layout = RunLayout(Path(run_dir))
    out = layout.epoch_checkpoint(epoch)
    loader = _open_loader(config, epoch, index_path, ctx)
    state = build_state(config, epoch, ctx.device, checkpoint_in)
    _wrap(state, config, ctx)
    amp_dtype = resolve_amp(config.amp, ctx.device)
    options = StepOptions(
        margin=config.margin,
        semihard=config.use_semihard_negatives,
        amp_dtype=amp_dtype,
        channels_last=config.channels_last,
        grad_clip_norm=config.grad_clip_norm,
        world_size=ctx.world_size,
        mining=config.mining,
        distance=config.triplet_distance,
    )
    summary = run_steps(
        state,
        loader,
        options,
        ctx.device,
        log_every=config.log_every_n_steps,
        first_step=epoch * config.iterations_per_epoch,
        on_metrics=on_metrics if ctx.is_main else None,
        progress=ctx.is_main,
        total=len(loader),
    )
    summary.update(
        state.notes,
        epoch=epoch,
        world_size=ctx.world_size,
        device=str(ctx.device),
        amp=str(amp_dtype).removeprefix("torch.") if amp_dtype else "off",
    )
    if ctx.is_main:
        full = checkpoint_state(config, epoch, state, index_path, summary)
        save_checkpoint(out, weights_only_state(full))
        save_checkpoint(layout.last, full)
        atomic_write_json(summary_path(out), summary)
        prune_epochs(
            layout.checkpoints, None if config.checkpoint_retention is None else max(config.checkpoint_retention, 1)
        )
    if ctx.distributed:
        dist.barrier()
    return out
