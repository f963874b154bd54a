"""Hostile servers and archives through `facenet download` and the download task: no data lost or faked,
archive limits, retries only where they help.

Each case checks the exit code, the one-line message and that nothing outside the target changed
(the workspace outside raw/<dataset> and downloads/<dataset>, and a sibling folder).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from support.cli import assert_one_line_error, invoke
from support.http_server import serving
from support.processes import service_env
from support.tree_state import tree_state

from facenet_core.ingest.extract import MARKER_VERSION

pytestmark = pytest.mark.timeout(180)

PAYLOAD = bytes(range(256)) * 400


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    workspace = tmp_path / "ws"
    (workspace / "runs" / "mine").mkdir(parents=True)
    (workspace / "runs" / "mine" / "weights.pt").write_bytes(b"weights")
    return {"root": tmp_path, "workspace": workspace, "sibling": sibling}


def outside(area: dict[str, Path], *targets: str) -> dict[str, dict[str, str]]:
    """Snapshot of the workspace but `targets` (and raw/, downloads/ themselves), and of the sibling."""
    workspace = {
        path: state
        for path, state in tree_state(area["workspace"]).items()
        if path not in ("raw", "downloads") and not any(path == t or path.startswith(t + "/") for t in targets)
    }
    return {"workspace": workspace, "sibling": tree_state(area["sibling"])}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code, _, err = invoke(argv, capsys)
    return code, assert_one_line_error(err) if code else err


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def user_catalogue(area, monkeypatch, entries: dict) -> None:
    path = area["root"] / "catalogue.yaml"
    path.write_text(yaml.safe_dump({"datasets": entries}))
    monkeypatch.setenv("FACENET_DATASETS", str(path))


def download(name: str, area, capsys) -> tuple[int, str]:
    return run_cli(["download", name, "--workspace", str(area["workspace"]), "--quiet", "--retries", "1"], capsys)


def images(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_archives_sharing_a_folder_are_merged_and_repaired(area, server, monkeypatch, capsys) -> None:
    server.files["/part_a.tar"] = tar_bytes({"imgs/PersonA/a1.jpg": b"a1", "imgs/PersonA/a2.jpg": b"a2"}, "w")
    server.files["/part_b.tar"] = tar_bytes({"imgs/PersonB/b1.jpg": b"b1"}, "w")
    files = [{"url": f"{server.url}/part_a.tar"}, {"url": f"{server.url}/part_b.tar"}]
    user_catalogue(area, monkeypatch, {"parts": {"description": "d", "images_subdir": "imgs", "files": files}})
    before = outside(area, "raw/parts", "downloads/parts")
    code, _ = download("parts", area, capsys)
    root = area["workspace"] / "raw" / "parts" / "imgs"
    expected = {"PersonA/a1.jpg": b"a1", "PersonA/a2.jpg": b"a2", "PersonB/b1.jpg": b"b1"}
    assert code == 0 and images(root) == expected
    raw = area["workspace"] / "raw" / "parts"
    assert (raw / ".extracted.part_a.tar.json").is_file() and (raw / ".extracted.part_b.tar.json").is_file()
    assert outside(area, "raw/parts", "downloads/parts") == before

    # A user (or a crash) removes part of the tree: the rerun notices, although every marker is there.
    (root / "PersonA" / "a2.jpg").unlink()
    assert download("parts", area, capsys)[0] == 0
    assert images(root) == expected
    assert len(server.requests) == 2  # the downloads were complete: nothing fetched again


def test_tree_of_the_replacing_version_is_repaired_on_rerun(area, server, monkeypatch, capsys) -> None:
    """Version 1 left imgs/PersonB only, both extraction markers and its .prepared.json: all are redone."""
    server.files["/part_a.tar"] = tar_bytes({"imgs/PersonA/a1.jpg": b"a1"}, "w")
    server.files["/part_b.tar"] = tar_bytes({"imgs/PersonB/b1.jpg": b"b1"}, "w")
    files = [{"url": f"{server.url}/part_a.tar"}, {"url": f"{server.url}/part_b.tar"}]
    user_catalogue(area, monkeypatch, {"parts": {"description": "d", "images_subdir": "imgs", "files": files}})
    assert download("parts", area, capsys)[0] == 0
    raw = area["workspace"] / "raw" / "parts"
    for marker in raw.glob(".extracted.*"):
        if marker.name.endswith(".json"):
            old = json.loads(marker.read_text())
            marker.write_text(json.dumps({**old, "version": MARKER_VERSION - 1}))
        else:
            marker.unlink()
    prepared = json.loads((raw / ".prepared.json").read_text())
    (raw / ".prepared.json").write_text(json.dumps({**prepared, "version": 1}))
    for path in (raw / "imgs" / "PersonA").iterdir():
        path.unlink()
    (raw / "imgs" / "PersonA").rmdir()
    assert download("parts", area, capsys)[0] == 0
    assert images(raw / "imgs") == {"PersonA/a1.jpg": b"a1", "PersonB/b1.jpg": b"b1"}


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_archive_bomb_is_refused_unless_its_entry_allows_more(kind: str, area, server, monkeypatch, capsys) -> None:
    size = 20 << 20
    if kind == "tgz":
        body = tar_bytes({"bomb/zeros.bin": bytes(size)})
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("bomb/zeros.bin", bytes(size))
        body = buffer.getvalue()
    server.files[f"/bomb.{kind}"] = body
    ratio = size / len(body)
    entry = {"description": "d", "files": [{"url": f"{server.url}/bomb.{kind}"}]}
    user_catalogue(area, monkeypatch, {"bomb": entry})
    before = outside(area, "raw/bomb", "downloads/bomb")
    code, err = download("bomb", area, capsys)
    assert code == 2
    assert f"bomb.{kind}: extracts to 20,971,520 bytes" in err and "bound 100:1" in err
    assert "max_extract_ratio" in err
    assert sorted(p.name for p in (area["workspace"] / "raw" / "bomb").iterdir()) == [".extract.lock"]
    assert outside(area, "raw/bomb", "downloads/bomb") == before

    user_catalogue(area, monkeypatch, {"bomb": {**entry, "max_extract_ratio": round(ratio) + 10}})
    assert download("bomb", area, capsys)[0] == 0
    assert (area["workspace"] / "raw" / "bomb" / "bomb" / "zeros.bin").stat().st_size == size


def test_body_without_length_closed_early_is_completed_and_recorded(area, server, capsys, caplog) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.no_length = True
    server.drops["/data.bin"] = 1
    dest = area["workspace"] / "downloads"
    before = outside(area, "downloads")
    code, err = run_cli(["download", f"{server.url}/data.bin", "--dest", str(dest), "--quiet"], capsys)
    assert code == 0
    assert (dest / "data.bin").read_bytes() == PAYLOAD
    record = json.loads((dest / ".data.bin.fetched.json").read_text())
    assert record["size"] == len(PAYLOAD) and record["verified"] == []
    assert "not verified" in caplog.text and record["sha256"] in caplog.text
    assert outside(area, "downloads") == before


def test_unterminated_chunked_body_is_not_promoted(area, server, capsys) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.chunked = True
    server.drops["/data.bin"] = 10
    dest = area["workspace"] / "downloads"
    code, err = run_cli(
        ["download", f"{server.url}/data.bin", "--dest", str(dest), "--quiet", "--retries", "1"], capsys
    )
    assert code == 2
    assert err.startswith("facenet download: error: download of ") and "failed after 2 attempts" in err
    assert not (dest / "data.bin").exists()


@pytest.mark.parametrize(
    "setup, flag, message",
    [
        ({"errors": [404] * 5}, [], "HTTP 404 Not Found for"),
        ({"errors": [403] * 5}, [], "HTTP 403 Forbidden for"),
        ({}, ["--sha256", "0" * 64], "checksum mismatch for"),
    ],
    ids=["404", "403", "checksum"],
)
def test_final_errors_fail_at_once(setup: dict, flag: list[str], message: str, area, server, capsys) -> None:
    server.files["/data.bin"] = PAYLOAD
    if setup:
        server.errors["/data.bin"] = list(setup["errors"])
    dest = area["workspace"] / "downloads"
    before = outside(area, "downloads")
    code, err = run_cli(["download", f"{server.url}/data.bin", "--dest", str(dest), "--quiet", *flag], capsys)
    assert code == 2
    assert err.startswith(f"facenet download: error: {message} {server.url}/data.bin")
    assert len(server.requests) == 1  # --retries 5 by default, none used
    assert not (dest / "data.bin").exists() and not (dest / "data.bin.part").exists()
    assert outside(area, "downloads") == before


def test_transient_errors_are_retried(area, server, capsys) -> None:
    server.files["/data.bin"] = PAYLOAD
    server.errors["/data.bin"] = [503, 429]
    dest = area["workspace"] / "downloads"
    code, _ = run_cli(["download", f"{server.url}/data.bin", "--dest", str(dest), "--quiet"], capsys)
    assert code == 0 and (dest / "data.bin").read_bytes() == PAYLOAD
    assert server.statuses("/data.bin") == [503, 429, 200]


def test_connection_refused_ends_as_one_line(area, capsys) -> None:
    with serving() as gone:
        url = f"{gone.url}/data.bin"
    dest = area["workspace"] / "downloads"
    code, err = run_cli(["download", url, "--dest", str(dest), "--quiet", "--retries", "1"], capsys)
    assert code == 2
    assert err.startswith(f"facenet download: error: download of {url} failed after 2 attempts: cannot reach")


def test_two_processes_fetch_one_file_once(area, server) -> None:
    server.files["/slow.bin"] = PAYLOAD
    server.delay = 1.5
    dest = area["workspace"] / "downloads"
    command = [sys.executable, "-m", "flows.cli", "download", f"{server.url}/slow.bin", "--dest", str(dest), "--quiet"]
    repo = Path(__file__).resolve().parents[2]
    env = service_env()
    processes = [
        subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert [out.decode().strip() for out, _ in outputs] == [str(dest / "slow.bin")] * 2
    assert server.statuses("/slow.bin") == [200]
    assert (dest / "slow.bin").read_bytes() == PAYLOAD


@pytest.mark.slow
@pytest.mark.timeout(900)  # the Prefect harness may start it, slowly on a loaded machine
@pytest.mark.usefixtures("prefect_harness")
def test_download_task_retries_only_transient_errors(area, server) -> None:
    from prefect import flow

    from facenet_core.config import DatasetConfig
    from facenet_core.workspace import Workspace
    from tasks.data import download_dataset

    server.files["/busy.tgz"] = tar_bytes({"faces/Ann/Ann_0001.jpg": b"ann"})
    server.errors["/busy.tgz"] = [503, 503]
    server.errors["/gone.tgz"] = [404] * 5
    workspace = Workspace.at(area["workspace"])

    def dataset(name: str) -> DatasetConfig:
        return DatasetConfig(name=name, files=[{"url": f"{server.url}/{name}.tgz"}])

    @flow
    def fetch_both():
        busy = download_dataset(workspace=workspace, dataset=dataset("busy"))
        try:
            download_dataset(workspace=workspace, dataset=dataset("gone"))
        except Exception as error:  # the task's final failure, re-raised in the flow
            return busy, error
        return busy, None

    busy, error = fetch_both()
    assert Path(busy.root, "faces", "Ann", "Ann_0001.jpg").read_bytes() == b"ann"
    assert server.statuses("/busy.tgz") == [503, 503, 200]  # Prefect's retries, none inside the task
    assert error is not None and "HTTP 404 Not Found for" in str(error)
    assert server.statuses("/gone.tgz") == [404]  # final: not retried
