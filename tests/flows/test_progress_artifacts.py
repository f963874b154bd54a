"""Progress in the Prefect UI: the crop flow and the training flow each leave a progress artifact
at 100 when they end, and the crop flow logs a line per shard."""

import logging

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from facenet_core.synthetic.demo import generate_identities
from flows.crop import crop_dataset
from flows.train import facenet_train

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def progress_of(state, key):
    """The flow run's progress artifacts under `key`."""
    run = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run]), key=ArtifactFilterKey(any_=[key])
            )
        )


def test_crop_flow_progress_reaches_100_and_logs_each_shard(tmp_path, caplog):
    raw = generate_identities(tmp_path / "raw", num_identities=2, images_per_identity=3, seed=5)
    options = {"device": "cpu", "workers": 1, "image_size": 48}
    with caplog.at_level(logging.INFO):
        state = crop_dataset(str(tmp_path / "ws"), str(raw), str(tmp_path / "out"), options, 1, return_state=True)
    assert state.is_completed()
    (artifact,) = progress_of(state, "facenet-crop-progress")
    assert (artifact.type, artifact.data, artifact.description) == ("progress", 100.0, "2/2 shards, 6 images")
    shards = [r.getMessage() for r in caplog.records if r.getMessage().startswith("shard ")]
    assert [line.split(",")[0] for line in shards] == ["shard 1/2 done: 3 images", "shard 2/2 done: 3 images"]


def test_training_flow_progress_reaches_100(tiny_preset):
    state = facenet_train(str(tiny_preset), return_state=True)
    assert state.is_completed()
    (artifact,) = progress_of(state, "facenet-train-progress")
    assert (artifact.type, artifact.data, artifact.description) == ("progress", 100.0, "2 epochs done")
