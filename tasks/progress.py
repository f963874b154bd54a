"""Progress in the Prefect UI: progress artifacts updated at a bounded rate, and the crop flow's
per-shard progress (a log line per shard, the artifact over the shards)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from facenet_core.detect.crop import images_of

# At most one API call per artifact every UPDATE_SECONDS (plus the final one): progress never
# slows a stage down or floods the Prefect server, whatever the number of steps or shards.
UPDATE_SECONDS = 5.0

log = logging.getLogger(__name__)


class Throttle:
    """`ready()` is True at the first call, then once at least `seconds` have passed since the last True."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True


class ProgressArtifact:
    """A Prefect progress artifact (0-100) of the current flow or task run, updated at most once every
    `seconds` and always by `finish`. An unreachable API costs a warning, never the run."""

    def __init__(self, artifact_id: UUID | str | None, seconds: float = UPDATE_SECONDS):
        self.id = UUID(str(artifact_id)) if artifact_id else None
        self._throttle = Throttle(seconds)

    @classmethod
    def create(cls, key: str, description: str, percent: float = 0.0, seconds: float = UPDATE_SECONDS):
        """A new artifact under `key` (its history lists one per run)."""
        try:
            return cls(create_progress_artifact(_clamp(percent), key=key, description=description), seconds)
        except Exception as error:  # progress display must not stop the stage
            log.warning("could not create the progress artifact %s: %s", key, error)
            return cls(None, seconds)

    def update(self, percent: float, description: str | None = None) -> None:
        """Set the progress unless the last update was under `seconds` ago."""
        if self._throttle.ready():
            self._send(percent, description)

    def finish(self, description: str | None = None) -> None:
        """Set 100%, whatever the throttle says."""
        self._send(100.0, description)

    def _send(self, percent: float, description: str | None) -> None:
        if self.id is None:
            return
        try:
            update_progress_artifact(self.id, _clamp(percent), description=description)
        except Exception as error:  # progress display must not stop the stage
            log.warning("could not update the progress artifact %s: %s", self.id, error)


def _clamp(percent: float) -> float:
    return min(max(float(percent), 0.0), 100.0)


class ShardProgress:
    """The crop flow's progress: `shard_done(counts)` as each shard's task returns (cached or not)
    logs "shard k/n done: N images, x img/s" and moves the artifact to the fraction of shards done
    (shards hold equally many identity folders; counting the images first would list every folder)."""

    def __init__(self, shards: int, logger: logging.Logger | logging.LoggerAdapter, artifact_key: str):
        self.shards, self.logger = shards, logger
        self.done_shards = self.done_images = 0
        self.started = time.monotonic()
        self.artifact = ProgressArtifact.create(artifact_key, self._describe())

    def _describe(self) -> str:
        return f"{self.done_shards}/{self.shards} shards, {self.done_images} images"

    def shard_done(self, counts: dict[str, Any]) -> None:
        images = images_of(counts)
        self.done_shards += 1
        self.done_images += images
        rate = self.done_images / max(time.monotonic() - self.started, 1e-9)
        self.logger.info("shard %d/%d done: %d images, %.1f img/s", self.done_shards, self.shards, images, rate)
        self.artifact.update(100.0 * self.done_shards / self.shards, f"{self._describe()}, {rate:.1f} img/s")

    def finish(self) -> None:
        self.artifact.finish(self._describe())
