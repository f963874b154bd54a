"""facenet-crop: MTCNN-crop a tree of identity folders, one task per shard of identities."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from facenet_core.config import Config
from facenet_core.detect import crop as crop_core
from facenet_core.detect import folder, parallel
from facenet_core.detect.options import CropOptions
from facenet_core.detect.shards import input_folder
from facenet_core.errors import UserError
from tasks import crop as crop_tasks
from tasks.caching import results_dir
from tasks.progress import ShardProgress


def crop_options(cfg: Config) -> dict[str, Any]:
    """The crop stage's parameters from the config (the output-deciding ones key each shard's cache)."""
    return {
        "image_size": cfg.crop_image_size,
        "margin": cfg.crop_margin,
        "batch_size": cfg.crop_batch_size,
        "exif_transpose": cfg.exif_transpose,
        "png_compress_level": cfg.crop_png_compress_level,
        "batch_megapixels": cfg.crop_batch_megapixels,
        "device": cfg.device,
        # Locally each shard task (a thread) hands its shard to one of crop_workers processes;
        # a Dask worker runs the shard itself.
        "workers": 1 if cfg.dask_address else cfg.crop_workers,
    }


@flow(name="facenet-crop", task_runner=ThreadPoolTaskRunner(max_workers=2))
def crop_dataset(
    workspace: str, input_root: str, output_root: str, options: CropOptions, shard_size: int = 256
) -> dict[str, Any]:
    """Crop every shard (cached per shard), then merge the detections tables.

    `options` is typed (a dict of its fields validates into it), so the deployment's run form has
    one field per crop option. Shard task runs are named crop-shard-0000, crop-shard-0001, ...

    The flow holds the output folder's lock throughout (shard tasks do not): a second crop of the
    same folder, e.g. another flow run of a sweep, waits for this one and then finds its shards cached.
    """
    folder.check_folders(input_root, output_root)
    input_folder(input_root)
    with folder.output_lock(output_root, wait=True):
        folder.remove_root_temporaries(output_root)
        plan = folder.plan_crop(input_root, output_root, shard_size)
        if not plan.shards:
            raise UserError(f"no identity folders with images under {input_root}")
        # No more worker processes than shards: a single shard crops in its task's thread, no start-up.
        workers = min(options.resolved_workers(), len(plan.shards))
        shard_options = {**dataclasses.asdict(options), "workers": workers}
        storage = results_dir(workspace)
        shard_task = crop_tasks.crop_shard.with_options(result_storage=storage)
        progress = ShardProgress(len(plan.shards), get_run_logger(), "facenet-crop-progress")
        futures = [
            shard_task.with_options(task_run_name=f"crop-shard-{index:04d}").submit(
                workspace, input_root, output_root, identities, shard_options, seeds
            )
            for index, (identities, seeds) in enumerate(zip(plan.shards, plan.seeds, strict=True))
        ]
        try:
            tables = []
            for future in futures:  # in order: a log line and an artifact update per shard
                result = future.result()
                progress.shard_done(result)
                tables.append(result["table"])
        finally:
            wait(futures)  # a failed shard raises only once no other shard task can still start
            parallel.shutdown_shard_processes()  # training, next in this process, gets the memory back
        merge = crop_tasks.merge_detections.with_options(result_storage=storage)
        merged = merge(workspace, output_root, tables, [list(entry) for entry in plan.rejected])
        folder.drop_unneeded(output_root, plan.ids)
        progress.finish()
    return {"root": output_root, **merged}


def crop_flow_for(cfg: Config):
    """The crop flow: shard tasks on threads feeding worker processes, or on a Dask cluster when dask_address is set."""
    if cfg.dask_address:
        from prefect_dask import DaskTaskRunner

        return crop_dataset.with_options(task_runner=DaskTaskRunner(address=cfg.dask_address))
    workers = crop_core.CropOptions(workers=cfg.crop_workers).resolved_workers()
    return crop_dataset.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))


def run_crop(cfg: Config, input_root: str | Path, output_root: str | Path) -> dict[str, Any]:
    """Crop one input tree into output_root with the configured runner."""
    return crop_flow_for(cfg)(
        str(Path(cfg.workspace).resolve()),
        str(input_root),
        str(output_root),
        CropOptions(**crop_options(cfg)),
        cfg.crop_shard_size,
    )
