"""Stage caching: hits across flow runs, misses when inputs change or outputs were tampered with."""

from pathlib import Path

import pytest
from prefect import flow

from tasks.caching import results_dir, stage_task, tree_fingerprint

pytestmark = pytest.mark.usefixtures("prefect_harness")

CALLS: list[tuple[str, int]] = []


@stage_task(
    stage="square",
    version=1,
    key_parts=lambda p: {"source": tree_fingerprint(p["source"]), "power": p["power"]},
    outputs=lambda r: [r["out"]],
)
def square(workspace: str, source: str, power: int) -> dict:
    CALLS.append((source, power))
    value = int((Path(source) / "n.txt").read_text()) ** power
    out = Path(workspace) / f"out-{power}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(str(value))
    return {"out": str(out), "value": value}


@flow
def run_square(workspace: str, source: str, power: int):
    return square.with_options(result_storage=results_dir(workspace))(workspace, source, power, return_state=True)


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
