"""Untrusted names (URL segments, file names, catalogue entries, dataset, eval-set and run names,
archive members) through every entry point: the CLI, a preset, a catalogue file and flow parameters.

Each case ends as one line naming the bad name, exit code 2, and leaves every folder outside the
target as it was (the workspace and a sibling folder are snapshotted before and after).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml
from support.cli import assert_one_line_error, invoke
from support.http_server import FileServer
from support.tree_state import tree_state

from facenet_core.config.loading import load_config
from facenet_core.safepath import UnsafeNameError
from facenet_core.workspace import Workspace

pytestmark = pytest.mark.timeout(120)

ENCODED_SEGMENTS = {
    "encoded-absolute": "%2Fsomewhere%2Fevil.bin",
    "encoded-dotdot": "..%2F..%2Fx.bin",
    "encoded-parent": "%2E%2E",
    "encoded-backslash": "..%5C..%5Cx.bin",
    "nul": "x%00.bin",
    "too-long": "n" * 300,
}
BAD_NAMES = {
    "parent": "..",
    "dot": ".",
    "absolute": "/etc/passwd",
    "traversal": "../../x",
    "backslash": "..\\..\\x",
    "nul": "x\x00y",
    "too-long": "n" * 300,
}


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    """A workspace with a run and a download in it, and a sibling folder, as a user would have them."""
    workspace = tmp_path / "ws"
    (workspace / "runs" / "mine").mkdir(parents=True)
    (workspace / "runs" / "mine" / "weights.pt").write_bytes(b"weights")
    (workspace / "downloads").mkdir()
    return {"root": tmp_path, "workspace": workspace, "sibling": sibling}


def snapshot(area: dict[str, Path]) -> dict[str, dict[str, str]]:
    return {name: tree_state(area[name]) for name in ("workspace", "sibling")}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """`facenet ARGV` in-process: (exit code, stderr), checking the error is one line."""
    code, _, err = invoke(argv, capsys)
    return code, assert_one_line_error(err) if code else err.strip()


@pytest.mark.parametrize("segment", list(ENCODED_SEGMENTS.values()), ids=list(ENCODED_SEGMENTS))
def test_cli_url_names(segment: str, area, server: FileServer, capsys) -> None:
    server.files[f"/any/{segment}"] = b"evil"
    before = snapshot(area)
    dest = area["workspace"] / "downloads"
    code, err = run_cli(["download", f"{server.url}/any/{segment}", "--dest", str(dest), "--quiet"], capsys)
    assert code == 2
    assert err.startswith("facenet download: error: file name of ") and "is not a safe file name" in err
    assert server.requests == []
    assert snapshot(area) == before
    assert not Path("/somewhere/evil.bin").exists()


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_cli_filename_flag(name: str, area, capsys) -> None:
    source = area["root"] / "file.bin"
    source.write_bytes(b"data")
    before = snapshot(area)
    dest = area["workspace"] / "downloads"
    code, err = run_cli(["download", str(source), "--dest", str(dest), "--filename", name, "--quiet"], capsys)
    assert code == 2
    assert err.startswith("facenet download: error: filename ") and "is not a safe file name" in err
    assert snapshot(area) == before


@pytest.mark.parametrize("name", ["..", ".", "n" * 300], ids=["parent", "dot", "too-long"])
def test_cli_catalogue_names(name: str, area, capsys) -> None:
    before = snapshot(area)
    for source in (name, f"{area['root']}/cat.yaml#{name}"):
        code, err = run_cli(["download", source, "--workspace", str(area["workspace"]), "--quiet"], capsys)
        assert code == 2
        assert "error: dataset name" in err and "is not a safe file name" in err
    assert snapshot(area) == before


def tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def catalogue(area, monkeypatch, entries: dict) -> Path:
    path = area["root"] / "catalogue.yaml"
    path.write_text(yaml.safe_dump({"datasets": entries}))
    monkeypatch.setenv("FACENET_DATASETS", str(path))
    return path


@pytest.mark.parametrize(
    "entry_name, files, message",
    [
        ("..", None, "entry name '..' is not a safe file name"),
        ("x", [{"url": "ARCHIVE", "filename": "../../../../x.bin"}], "is not a safe file name"),
        ("x", [{"url": "http://127.0.0.1:9/a/..%2F..%2Fx.bin"}], "contains a path separator"),
        ("x", [{"url": "ARCHIVE", "filename": "/abs/x.bin"}], "is not a safe file name"),
        ("x", [{"url": "ARCHIVE", "filename": "n" * 300}], "longer than 255 bytes"),
    ],
    ids=["entry-dotdot", "filename-traversal", "encoded-url", "filename-absolute", "filename-too-long"],
)
def test_catalogue_file(entry_name: str, files, message: str, area, monkeypatch, capsys) -> None:
    """The reported case: an entry named `..` whose archive holds runs/ would land in the workspace root."""
    archive = tgz(area["root"] / "evil.tgz", {"runs/mine/weights.pt": b"overwritten", "x.bin": b"x"})
    files = [
        {k: (str(archive) if v == "ARCHIVE" else v) for k, v in f.items()} for f in files or [{"url": str(archive)}]
    ]
    path = catalogue(area, monkeypatch, {entry_name: {"description": "evil", "files": files}})
    before = snapshot(area)
    code, err = run_cli(["download", "--list"], capsys)
    assert code == 2 and str(path) in err and message in err, err
    code, err = run_cli(["download", entry_name, "--workspace", str(area["workspace"]), "--quiet"], capsys)
    assert code == 2 and "is not a safe file name" in err, err
    assert snapshot(area) == before
    assert (area["workspace"] / "runs" / "mine" / "weights.pt").read_bytes() == b"weights"


@pytest.mark.parametrize(
    "member",
    ["../../evil.txt", "/abs/evil.txt", "people\\..\\..\\evil.txt", "people/" + "n" * 300],
    ids=["dotdot", "absolute", "backslash", "too-long"],
)
def test_archive_members(member: str, area, monkeypatch, capsys) -> None:
    archive = tgz(area["root"] / "set.tgz", {"people/Ann/Ann_0001.jpg": b"ann", member: b"evil"})
    catalogue(area, monkeypatch, {"set": {"description": "d", "files": [{"url": str(archive)}]}})
    before = snapshot(area)
    code, err = run_cli(["download", "set", "--workspace", str(area["workspace"]), "--quiet"], capsys)
    assert code == 2
    assert err.startswith("facenet download: error: set.tgz: entry") and "refusing to extract" in err
    after = snapshot(area)
    target = area["workspace"] / "raw" / "set"
    assert sorted(p.name for p in target.iterdir()) == [".extract.lock"]  # nothing extracted
    changed = {k for k in after["workspace"].keys() ^ before["workspace"].keys()}
    assert changed <= {"raw", "raw/set", "raw/set/.extract.lock", "downloads/set", "downloads/set/set.tgz"} | {
        "downloads/set/.set.tgz.lock",
        "downloads/set/.set.tgz.fetched.json",
    }
    assert after["sibling"] == before["sibling"]
    assert not (area["root"] / "evil.txt").exists() and not Path("/abs/evil.txt").exists()


def preset(area, config: dict) -> Path:
    path = area["root"] / "preset.yaml"
    path.write_text(yaml.safe_dump({"workspace": str(area["workspace"]), **config}))
    return path


PRESET_CASES = {
    "dataset-name": ({"dataset": {"name": ".."}}, "dataset.name", "dataset name '..'"),
    "dataset-name-too-long": ({"dataset": {"name": "n" * 300}}, "dataset.name", "longer than 255 bytes"),
    "run-name": ({"run_name": ".."}, "run_name", "run_name '..'"),
    "eval-set-name": ({"eval_sets": [{"name": "..", "root": "r", "pairs": "p"}]}, "eval_sets.0.name", "'..'"),
    "eval-set-dataset": (
        {"eval_sets": [{"name": "e", "dataset": "..", "root": "r", "pairs": "p"}]},
        "eval_sets.0.dataset",
        "eval set dataset '..'",
    ),
    "download-filename": (
        {"dataset": {"name": "d", "files": [{"url": "/x.tgz", "filename": "../../x.tgz"}]}},
        "dataset.files.0.filename",
        "is not a safe file name",
    ),
}


@pytest.mark.parametrize("config, field, message", list(PRESET_CASES.values()), ids=list(PRESET_CASES))
def test_preset(config: dict, field: str, message: str, area, capsys) -> None:
    path = preset(area, config)
    before = snapshot(area)
    code, err = run_cli(["run", "--preset", str(path)], capsys)
    assert code == 2
    assert err.startswith("facenet run: error: invalid configuration") and field in err and message in err, err
    assert snapshot(area) == before


@pytest.mark.parametrize("name", ["..", ".", "n" * 300], ids=["parent", "dot", "too-long"])
def test_cli_run_name_flag(name: str, area, capsys) -> None:
    before = snapshot(area)
    code, err = run_cli(["run", "--preset", str(preset(area, {})), "--run_name", name], capsys)
    assert code == 2 and "run_name" in err and "is not a safe file name" in err
    assert snapshot(area) == before


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_workspace_run_dir(name: str, area) -> None:
    with pytest.raises(UnsafeNameError, match="run name"):
        Workspace(area["workspace"]).run_dir(name)
    assert Workspace(area["workspace"]).run_dir("mine") == area["workspace"] / "runs" / "mine"


def test_run_dir_through_a_symlink_out_is_refused(area) -> None:
    (area["workspace"] / "runs" / "link").symlink_to(area["sibling"])
    with pytest.raises(UnsafeNameError, match="resolves outside"):
        Workspace(area["workspace"]).run_dir("link")


@pytest.mark.slow
@pytest.mark.timeout(900)  # the Prefect harness may start it, slowly on a loaded machine
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dataset": {"name": ".."}}, "dataset name '..'"),
        ({"run_name": "../x"}, "run_name"),
        ({"eval_sets": [{"name": "..", "root": "r", "pairs": "p"}]}, "eval set name '..'"),
    ],
    ids=["dataset", "run-name", "eval-set"],
)
def test_flow_parameters(overrides: dict, message: str, area) -> None:
    from prefect.exceptions import ParameterTypeError

    from flows.prepare import facenet_prepare_data

    path = preset(area, {})
    before = snapshot(area)
    # Names in typed sub-models fail Prefect's parameter check; run_name fails in load_config.
    with pytest.raises((ParameterTypeError, ValueError), match=message):
        facenet_prepare_data(preset=str(path), overrides=overrides)
    assert snapshot(area) == before


def test_load_config_names_every_bad_name(area) -> None:
    bad = {"run_name": "..", "dataset": {"name": "."}, "eval_sets": [{"name": "..", "root": "r", "pairs": "p"}]}
    with pytest.raises(ValueError) as error:
        load_config(None, bad)
    text = str(error.value)
    assert "run_name" in text and "dataset.name" in text and "eval_sets.0.name" in text


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@pytest.mark.parametrize(
    "field, config",
    [
        ("dataset.name", lambda n: {"dataset": {"name": n}}),
        ("run_name", lambda n: {"run_name": n}),
        ("eval_sets.0.name", lambda n: {"eval_sets": [{"name": n, "root": "r", "pairs": "p"}]}),
        ("eval_sets.0.dataset", lambda n: {"eval_sets": [{"name": "e", "dataset": n, "root": "r", "pairs": "p"}]}),
        ("dataset.files.0.filename", lambda n: {"dataset": {"files": [{"url": "/x.tgz", "filename": n}]}}),
    ],
    ids=["dataset", "run", "eval-set", "eval-set-dataset", "filename"],
)
def test_preset_names(field: str, config, name: str, area, capsys) -> None:
    path = preset(area, config(name))
    before = snapshot(area)
    code, err = run_cli(["run", "--preset", str(path)], capsys)
    assert code == 2 and err.startswith("facenet run: error: invalid configuration") and f"{field}:" in err, err
    assert snapshot(area) == before


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_catalogue_entry_names(name: str, area, monkeypatch, capsys) -> None:
    path = catalogue(area, monkeypatch, {name: {"description": "evil"}})
    before = snapshot(area)
    code, err = run_cli(["download", "--list"], capsys)
    assert code == 2 and str(path) in err and "entry name" in err and "is not a safe file name" in err, err
    assert snapshot(area) == before


@pytest.mark.parametrize("segment", list(ENCODED_SEGMENTS.values()), ids=list(ENCODED_SEGMENTS))
def test_preset_and_flow_urls(segment: str, area, capsys) -> None:
    """A dataset file's URL whose last segment decodes to a bad name fails when the config loads."""
    path = preset(area, {"dataset": {"name": "d", "files": [{"url": f"http://127.0.0.1:9/any/{segment}"}]}})
    before = snapshot(area)
    code, err = run_cli(["run", "--preset", str(path)], capsys)
    assert code == 2 and "dataset.files.0" in err and "is not a safe file name" in err, err
    with pytest.raises(ValueError, match="is not a safe file name"):
        load_config(None, {"dataset": {"files": [{"url": f"http://127.0.0.1:9/any/{segment}"}]}})
    assert snapshot(area) == before
