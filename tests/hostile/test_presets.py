"""Hostile preset names through `--preset` (short names and paths): one line naming the preset and the
packaged presets, exit code 2, nothing changed in the working folder or beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.tree_state import tree_state

import deployments
from flows.cli import main

pytestmark = pytest.mark.timeout(120)
PACKAGED = (
    "(demo, glint360k_resnet34, glint360k_resnet34_mined, lfw_view1, lfw_view1_gpu, lfw_view1_gpu_mined, "
    "lfw_view1_mined)"
)

CASES = [
    ("no_such_preset", "preset 'no_such_preset' is not a packaged preset " + PACKAGED),
    ("datasets", "preset 'datasets' is not a packaged preset " + PACKAGED),
    ("..", "preset name '..' is not a safe file name (refers to a folder)"),
    (".", "preset name '.' is not a safe file name (refers to a folder)"),
    ("a\x00b", "preset name 'a\\x00b' is not a safe file name (contains NUL)"),
    ("p" * 300, "is not a safe file name (longer than 255 bytes)"),
    (
        "missing.yaml",
        "preset missing.yaml not found: give the path of a YAML file or a packaged preset name " + PACKAGED,
    ),
    ("../demo.yaml", "preset ../demo.yaml not found"),
    ("deployments/demo.yaml", "preset deployments/demo.yaml not found"),
    ("folder/", "preset folder not found"),
]


@pytest.fixture
def area(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sibling: Path) -> dict[str, Path]:
    """The working folder (with a sub-folder and a file named like a preset) and a sibling folder."""
    work = tmp_path / "work"
    (work / "folder").mkdir(parents=True)
    (work / "demo").write_text("epochs: 1\n")
    monkeypatch.chdir(work)
    return {"work": work, "sibling": sibling, "packaged": deployments.DIR}


@pytest.mark.parametrize("command", ["run", "train", "demo"])
@pytest.mark.parametrize(("preset", "message"), CASES, ids=[repr(case[0])[:24] for case in CASES])
def test_bad_preset_is_one_line(command, preset, message, area, capsys) -> None:
    before = {name: tree_state(path) for name, path in area.items()}
    capsys.readouterr()
    code = main([command, "--preset", preset])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"facenet {command}: error: ") and message in lines[0], lines[0]
    assert {name: tree_state(path) for name, path in area.items()} == before


def test_bad_preset_through_the_console_entry(area) -> None:
    facenet = Path(sys.executable).with_name("facenet")
    before = {name: tree_state(path) for name, path in area.items()}
    env = {**os.environ, "FACENET_DEBUG": ""}
    done = subprocess.run([str(facenet), "run", "--preset", "lfw_view"], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == f"facenet run: error: preset 'lfw_view' is not a packaged preset {PACKAGED}: " + (
        "name one of them or give a file path"
    )
    assert {name: tree_state(path) for name, path in area.items()} == before
