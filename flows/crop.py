"""facenet-crop: MTCNN-crop a tree of identity folders, one task per shard of identities."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from facenet_core.detect import folder, parallel
from facenet_core.detect.options import CropOptions
from facenet_core.detect.shards import input_folder
from facenet_core.errors import UserError
from facenet_core.workspace import Workspace
from tasks.crop import crop_shard_task, merge_shards_task
from tasks.progress import ShardProgress
from tasks.results import Detections


@flow(name="facenet-crop", task_runner=ThreadPoolTaskRunner(max_workers=2))
def crop_dataset(
    workspace: str, input_root: str, output_root: str, options: CropOptions, shard_size: int = 256
) -> Detections:
    """Crop every shard (cached per shard), then merge the detections tables.

    `options` is typed (a dict of its fields validates into it), so the deployment's run form has
    one field per crop option. Shard task runs are named crop-shard-0000, crop-shard-0001, ...

    The flow holds the output folder's lock throughout (shard tasks do not): a second crop of the
    same folder, e.g. another flow run of a sweep, waits for this one and then finds its shards cached.
    """
    ws, source, out = Workspace.at(workspace), Path(input_root), Path(output_root)
    folder.check_folders(source, out)
    input_folder(source)
    with folder.output_lock(out, wait=True):
        folder.remove_root_temporaries(out)
        plan = folder.plan_crop(source, out, shard_size)
        if not plan.shards:
            raise UserError(f"no identity folders with images under {input_root}")
        shard_task = crop_shard_task.with_options(result_storage=ws.prefect_results)
        progress = ShardProgress(len(plan.shards), get_run_logger(), "facenet-crop-progress")
        # One set of worker processes for every shard of this run, gone when the block ends: training,
        # next in this process, gets the memory back.
        with parallel.crop_pool(options.worker_processes(len(plan.shards))) as pool:
            futures = [
                shard_task.with_options(task_run_name=f"crop-shard-{index:04d}").submit(
                    workspace=ws,
                    input_root=source,
                    output_root=out,
                    identities=identities,
                    options=options,
                    seeds=seeds,
                    pool=pool,
                )
                for index, (identities, seeds) in enumerate(zip(plan.shards, plan.seeds, strict=True))
            ]
            try:
                tables = []
                for future in futures:  # in order: a log line and an artifact update per shard
                    shard = future.result()
                    progress.shard_done(shard.counts)
                    tables.append(shard.table)
            finally:
                wait(futures)  # a failed shard raises only once no other shard task can still start
        merge = merge_shards_task.with_options(result_storage=ws.prefect_results)
        detections = merge(workspace=ws, output_root=out, shard_tables=tables, rejected=list(plan.rejected))
        folder.drop_unneeded(out, plan.ids)
        progress.finish()
    return detections


def run_crop(
    options: CropOptions,
    workspace: Workspace,
    input_root: Path,
    output_root: Path,
    shard_size: int,
    dask_address: str | None = None,
) -> Detections:
    """Crop one input tree into output_root: shard tasks on threads feeding `options.workers` worker
    processes, or on the Dask cluster at `dask_address`, whose workers each crop their shard themselves."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=dask_address)
        options = dataclasses.replace(options, workers=1)
    else:
        runner = ThreadPoolTaskRunner(max_workers=options.resolved_workers())
    return crop_dataset.with_options(task_runner=runner)(
        workspace=str(workspace.root),
        input_root=str(input_root),
        output_root=str(output_root),
        options=options,
        shard_size=shard_size,
    )
