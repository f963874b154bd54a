"""Task runs are named by what they do, read back from the Prefect API after a tiny facenet-train run."""

import asyncio
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from support.tiny import TINY

from flows.overrides import ConfigOverrides
from flows.train import facenet_train

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


async def task_run_names(root: UUID) -> list[str]:
    """Names of the task runs of a flow run and of all its subflow runs (not the subflows' own boxes)."""
    async with get_client() as client:
        flow_runs, frontier, subflow_boxes = {root}, [root], set()
        while frontier:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier))
            )
            frontier = [run.id for run in children if run.id not in flow_runs]
            flow_runs.update(frontier)
            subflow_boxes.update(run.parent_task_run_id for run in children)
        runs = await client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=list(flow_runs)))
        )
    return sorted(run.name for run in runs if run.id not in subflow_boxes)


def test_task_runs_say_which_epoch_set_and_shard(tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump({**TINY, "workspace": str(tmp_path / "workspace")}))
    state = facenet_train(str(preset), ConfigOverrides(), return_state=True)
    assert state.is_completed()
    names = asyncio.run(task_run_names(state.state_details.flow_run_id))
    assert names == sorted(
        [
            "open-tracking-run",
            "register",
            "demo-archive",
            "download-tiny",
            # the training identities and the evaluation set are two crop flows of two shards each
            *["crop-shard-0000", "crop-shard-0001", "crop-merge"] * 2,
            "manifest",
            *[f"{stage}-epoch-{epoch}" for stage in ("triplets", "train", "evaluate-tiny-eval") for epoch in (0, 1)],
        ]
    )
