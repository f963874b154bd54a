"""Stage caching: hits across flow runs, misses when inputs change or outputs were tampered with."""

from pathlib import Path

import pytest
from prefect import flow

from facenet_core.workspace import Workspace
from tasks.caching import stage_task, tree_fingerprint

pytestmark = pytest.mark.usefixtures("prefect_harness")

CALLS: list[tuple[str, int]] = []


def square_key(source: str, power: int) -> dict:
    return {"source": tree_fingerprint(source), "power": power}


@stage_task(stage="square", version=1, key=square_key, outputs=lambda r: [r["out"]])
def square(workspace: str, source: str, power: int) -> dict:
    CALLS.append((source, power))
    value = int((Path(source) / "n.txt").read_text()) ** power
    out = Path(workspace) / f"out-{power}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(str(value))
    return {"out": str(out), "value": value}


@flow
def run_square(workspace: str, source: str, power: int):
    storage = Workspace.at(workspace).prefect_results
    return square.with_options(result_storage=storage)(workspace, source, power, return_state=True)


@pytest.fixture
def setup(tmp_path):
    CALLS.clear()
    source = tmp_path / "src"
    source.mkdir()
    (source / "n.txt").write_text("3")
    return str(tmp_path / "ws"), str(source)


def test_second_run_is_cached_with_same_value(setup):
    workspace, source = setup
    first = run_square(workspace, source, 2)
    second = run_square(workspace, source, 2)
    assert first.is_completed() and not first.name == "Cached"
    assert second.name == "Cached" and second.result()["value"] == 9
    assert len(CALLS) == 1


def test_changed_parameter_or_input_content_runs_again(setup):
    workspace, source = setup
    run_square(workspace, source, 2)
    assert run_square(workspace, source, 3).name != "Cached"
    (Path(source) / "n.txt").write_text("4")
    state = run_square(workspace, source, 2)
    assert state.name != "Cached" and state.result()["value"] == 16
    assert len(CALLS) == 3


def test_tampered_or_missing_output_is_not_trusted(setup):
    workspace, source = setup
    out = Path(run_square(workspace, source, 2).result()["out"])
    out.write_text("garbage")
    again = run_square(workspace, source, 2)
    assert again.name != "Cached" and out.read_text() == "9"
    out.unlink()
    assert run_square(workspace, source, 2).name != "Cached" and out.read_text() == "9"
    assert run_square(workspace, source, 2).name == "Cached"
    assert len(CALLS) == 3


def test_a_key_reading_a_parameter_the_task_lacks_fails_when_the_task_is_made():
    def typo_key(sorce: str) -> dict:
        return {"source": sorce}

    with pytest.raises(TypeError, match=r"typo_key of cube reads \['sorce'\]"):

        @stage_task(stage="cube", version=1, key=typo_key, outputs=lambda r: [])
        def cube(workspace: str, source: str) -> dict:
            return {}


def test_results_live_in_the_workspace_prefect_results(setup):
    workspace, source = setup
    run_square(workspace, source, 2)
    records = list((Path(workspace) / "prefect-results" / "outputs").glob("square-v1-*.json"))
    assert len(records) == 1
