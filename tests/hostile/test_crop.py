"""`facenet crop` against hostile folders: an output folder that overlaps the input, a folder another
crop is writing, symlink loops, broken links and names that are not UTF-8 in the input, and a shard
table edited to name files outside the output folder.

Each case is built at test time and asserts the message, the exit code and that the input and a
sibling folder (and, for refusals, the whole area) are unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.cli import invoke
from support.tree_state import tree_state

from facenet_core.detect.shards import shard_id

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]
FAST = ["--device", "cpu", "--workers", "1", "--shard_size", "1", "--image_size", "32"]


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    """raw/<identity>/<image> (plain pictures: the detector finds no face in them, quickly), and a
    sibling folder a user keeps beside it."""
    raw = tmp_path / "area" / "raw"
    for identity, value in (("alice", 60), ("bob", 120)):
        (raw / identity).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.full((48, 48, 3), value + k, np.uint8)).save(raw / identity / f"{k}.png")
    return {"area": tmp_path / "area", "raw": raw, "sibling": sibling}


def snapshot(*folders: Path) -> list[dict[str, str]]:
    return [tree_state(folder) for folder in folders]


run_cli = invoke


def assert_one_line(code: int, err: str, *named: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("facenet crop: error: output folder "), lines[0]
    for name in named:
        assert name in lines[0], (name, lines[0])


def detections(out: Path) -> dict[str, dict]:
    return {row["source"]: row for row in pq.read_table(out / "detections.parquet").to_pylist()}


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("raw", "is the input folder"),
        ("raw/crops", "is inside the input folder"),
        ("raw/alice", "is inside the input folder"),
        (".", "contains the input folder"),
        ("link-to-raw", "is the input folder"),
    ],
)
def test_output_folder_overlapping_the_input_is_refused(area, capsys, output, problem):
    (area["area"] / "link-to-raw").symlink_to("raw")
    target = area["area"] / output
    before = snapshot(area["area"], area["sibling"])
    code, out, err = run_cli(["crop", str(area["raw"]), str(target), *FAST], capsys)
    assert_one_line(code, err, str(target), problem)
    assert out == "" and snapshot(area["area"], area["sibling"]) == before


HOLD_LOCK = """
import sys, time
import filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""  # the lock object kept: a dropped one releases


def test_a_folder_another_crop_is_writing_is_refused(area, capsys):
    out = area["area"] / "crops"
    (out / "alice").mkdir(parents=True)
    (out / "alice" / ".0.png.abc123.tmp").write_bytes(b"the other crop's file in flight")
    lock = out / ".crop.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(area["area"], area["sibling"])
        code, _, err = run_cli(["crop", str(area["raw"]), str(out), *FAST], capsys)
        assert_one_line(code, err, str(out), "is being written by another crop", f"lock file {lock}")
        env = os.environ | {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
        command = [sys.executable, "-m", "flows.cli", "crop", str(area["raw"]), str(out), *FAST]
        process = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert_one_line(process.returncode, process.stderr, "is being written by another crop")
        assert snapshot(area["area"], area["sibling"]) == before  # its temporary was not cleaned away
    finally:
        holder.kill()
        holder.wait()
    code, stdout, _ = run_cli(["crop", str(area["raw"]), str(out), *FAST], capsys)
    assert code == 0 and json.loads(stdout)["no_face"] == 4 and json.loads(stdout)["cleaned"] == 1


def test_unreadable_entries_and_bad_names_are_recorded_with_their_reason(area, capsys):
    raw = area["raw"]
    (raw / "alice" / "loop.jpg").symlink_to("loop.jpg")
    (raw / "alice" / "gone.png").symlink_to(area["area"] / "missing.png")
    (raw / "bob" / "cut.png").write_bytes((raw / "bob" / "0.png").read_bytes()[:60])
    (raw / "bob" / "junk.jpg").write_bytes(b"not an image")
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(os.fsdecode(os.fsencode(raw / "bob") + b"/caf\xe9.png"))
    bad_folder = os.fsdecode(os.fsencode(raw) + b"/z\xff")
    os.mkdir(bad_folder)
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(os.path.join(bad_folder, "x.png"))
    (raw / "carol").symlink_to("carol")
    out = area["area"] / "crops"
    before = snapshot(raw, area["sibling"])
    code, stdout, _ = run_cli(["crop", str(raw), str(out), *FAST], capsys)
    summary = json.loads(stdout)
    assert code == 0 and (summary["unreadable"], summary["bad_name"], summary["no_face"]) == (7, 2, 4)
    rows = detections(out)
    reasons = {source: row["reason"] for source, row in rows.items() if row["status"] == "unreadable"}
    assert reasons == {
        "alice/gone.png": "broken symbolic link (its target does not exist)",
        "alice/loop.jpg": "symbolic link loop",
        "bob/caf\ufffd.png": "file name is not valid UTF-8",
        "bob/cut.png": "OSError: image file is truncated",
        "bob/junk.jpg": "UnidentifiedImageError: cannot identify image file 'bob/junk.jpg'",
        "carol/": "symbolic link loop",
        "z\ufffd/x.png": "identity folder name is not valid UTF-8",
    }
    assert all(row["reason"] for row in rows.values() if row["status"] != "ok")
    assert snapshot(raw, area["sibling"]) == before


def test_a_shard_table_naming_files_outside_the_folder_deletes_nothing_there(area, capsys):
    raw, out = area["raw"], area["area"] / "crops"
    assert run_cli(["crop", str(raw), str(out), *FAST], capsys)[0] == 0
    table = out / ".shards" / f"{shard_id(['alice'])}.parquet"
    original = pq.read_table(table)
    row = original.to_pylist()[0]
    targets = ["../../sibling/keep.png", str(area["sibling"] / "keep.png"), "../raw/bob/0.png", "alice/0.png"]
    edited = [row | {"source": f"alice/{k}.png", "status": "ok", "output": t} for k, t in enumerate(targets)]
    pq.write_table(original.from_pylist(edited, schema=original.schema), table)
    (out / "alice").mkdir(exist_ok=True)
    (out / "alice" / "0.png").write_bytes(b"listed inside the folder: the stage's to remove")
    for path in (raw / "alice").iterdir():
        path.unlink()
    (raw / "alice").rmdir()
    before = snapshot(raw, area["sibling"])
    code, stdout, _ = run_cli(["crop", str(raw), str(out), *FAST], capsys)
    assert code == 0 and (json.loads(stdout)["dropped"], json.loads(stdout)["removed"]) == (1, 1)
    assert snapshot(raw, area["sibling"]) == before
    assert not table.exists() and not (out / "alice" / "0.png").exists()
    assert set(detections(out)) == {"bob/0.png", "bob/1.png"}
