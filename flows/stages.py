"""Call stage tasks from a flow and count how each ended (Completed, Cached, ...)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect.futures import PrefectFuture


class StageLog:
    """Runs tasks through `call`/`result` and keeps a count of their final state names."""

    def __init__(self) -> None:
        self.states: Counter[str] = Counter()

    def call(self, task: Any, **parameters: Any) -> Any:
        """Run `task` now with these keyword parameters; return its result (raises if it failed)."""
        state = task(**parameters, return_state=True)
        self.states[state.name] += 1
        return state.result()

    def result(self, future: PrefectFuture) -> Any:
        """Wait for a submitted task; return its result (raises if it failed)."""
        future.wait()
        self.states[future.state.name] += 1
        return future.result()
