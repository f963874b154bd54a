"""Progress helpers: the throttle's timing, a progress artifact's value as the API holds it (updates
dropped inside the interval, 100 at the end), the crop flow's per-shard log lines."""

import logging

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

from facenet_core.config import Config
from tasks.progress import ProgressArtifact, ShardProgress, Throttle
from tasks.train import step_progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_throttle_lets_one_call_through_per_interval():
    clock = Clock()
    throttle = Throttle(5.0, clock)
    seen = []
    for now in (100.0, 101.0, 104.9, 105.0, 106.0, 109.9, 110.0, 200.0):
        clock.now = now
        seen.append(throttle.ready())
    assert seen == [True, False, False, True, False, False, True, True]


@flow
def in_a_flow(make):
    """Artifacts belong to a flow or task run: create them in one."""
    return make()


def stored(artifact_id):
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id])))
    return artifact


@pytest.mark.usefixtures("prefect_harness")
def test_artifact_updates_are_throttled_and_finish_sets_100():
    artifact = in_a_flow(lambda: ProgressArtifact.create("test-progress", "starting", seconds=3600))
    first = stored(artifact.id)
    assert (first.type, first.data, first.key, first.description) == ("progress", 0.0, "test-progress", "starting")
    artifact.update(12.5, "first")
    artifact.update(50.0, "dropped: under an hour after the last")
    assert (stored(artifact.id).data, stored(artifact.id).description) == (12.5, "first")
    artifact.finish("done")
    assert (stored(artifact.id).data, stored(artifact.id).description) == (100.0, "done")
    artifact.update(250.0)  # throttled anyway; a value past 100 would be clamped
    assert stored(artifact.id).data == 100.0


def test_an_unreachable_api_costs_a_warning_not_the_run(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionError("no server")

    monkeypatch.setattr("tasks.progress.create_progress_artifact", refuse)
    artifact = ProgressArtifact.create("test-progress", "starting")
    assert artifact.id is None
    artifact.update(10.0)
    artifact.finish()
    assert "could not create the progress artifact test-progress: no server" in caplog.text


@pytest.mark.usefixtures("prefect_harness")
def test_shard_progress_logs_each_shard_and_ends_at_100(caplog):
    logger = logging.getLogger("test-shards")
    progress = in_a_flow(lambda: ShardProgress(2, logger, "test-shards"))
    with caplog.at_level(logging.INFO, logger="test-shards"):
        progress.shard_done({"ok": 1, "no_face": 1, "unreadable": 0, "too_small": 0, "resumed": 0})
        progress.shard_done({"ok": 3, "no_face": 0, "unreadable": 1, "too_small": 0, "resumed": 4})
    lines = [record.getMessage() for record in caplog.records if record.name == "test-shards"]
    assert [line.split(",")[0] for line in lines] == ["shard 1/2 done: 2 images", "shard 2/2 done: 4 images"]
    assert all(line.endswith(" img/s") for line in lines)
    assert stored(progress.artifact.id).data == 50.0  # one shard of two; the second update is throttled
    progress.finish()
    assert (stored(progress.artifact.id).data, stored(progress.artifact.id).description) == (
        100.0,
        "2/2 shards, 6 images",
    )


def test_training_steps_move_the_artifact_by_epoch_and_step():
    class Recorder(ProgressArtifact):
        def __init__(self):
            super().__init__(None)
            self.seen = []

        def update(self, percent, description=None):
            self.seen.append((percent, description))

    artifact = Recorder()
    on_step = step_progress(artifact, Config(epochs=2, iterations_per_epoch=3))
    for step in (1, 3, 4, 6):  # global steps done, as train_epoch reports them
        on_step({"loss": 0.1}, step)
    assert artifact.seen == [
        (pytest.approx(100 / 6), "epoch 1/2, step 1/3"),
        (50.0, "epoch 1/2, step 3/3"),
        (pytest.approx(400 / 6), "epoch 2/2, step 1/3"),
        (100.0, "epoch 2/2, step 3/3"),
    ]
