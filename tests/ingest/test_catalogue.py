"""The dataset catalogue, its merge into DatasetConfig, prepare_raw end to end and `facenet download`."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from facenet_core.config.schema import DatasetConfig, DownloadFile
from facenet_core.fileio import sha256_file
from facenet_core.ingest.catalogue import load_catalogue, resolve_dataset, with_mirror
from facenet_core.ingest.prepare import completion_marker, prepare_raw
from facenet_core.ingest.recordio import IRHeader, RecordIOWriter, pack_record
from facenet_core.workspace import Workspace
from flows.cli import download as download_command

LFW_PROTOCOL_FILES = ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt", "peopleDevTrain.txt", "peopleDevTest.txt")


def jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_builtin_catalogue_entries_are_complete() -> None:
    entries = load_catalogue()
    assert {"lfw", "vggface2", "casia-webface", "glint360k"} <= set(entries)
    for name, entry in entries.items():
        assert entry.description and entry.contains and entry.licence and entry.disk, name
        assert entry.files, name
    glint = entries["glint360k"]
    assert [f.filename for f in glint.files] == [f"glint360k_{n:02d}" for n in range(7)]
    assert all(len(f.md5) == 32 for f in glint.files) and glint.concatenate_parts and glint.format == "recordio"
    assert entries["lfw"].images_subdir == "lfw-deepfunneled"


@pytest.mark.lfw
def test_lfw_protocol_checksums_match_the_shared_copy(lfw_dir: Path) -> None:
    files = {f.name(): f for f in load_catalogue()["lfw"].files}
    for name in LFW_PROTOCOL_FILES:
        assert files[name].sha256 == sha256_file(lfw_dir / name), name
        assert files[name].md5 == hashlib.md5((lfw_dir / name).read_bytes()).hexdigest(), name


def test_resolve_fills_unset_fields_and_user_files_replace_urls(tmp_path: Path) -> None:
    local = tmp_path / "pairs.txt"
    dataset = DatasetConfig(catalogue="lfw", files=[DownloadFile(url=str(local))])
    resolved = resolve_dataset(dataset)
    assert resolved.name == "lfw" and resolved.images_subdir == "lfw-deepfunneled" and not resolved.aligned
    by_name = {f.filename: f for f in resolved.files}
    assert by_name["pairs.txt"].url == str(local)
    assert by_name["pairs.txt"].md5 == "9f1ba174e4e1c508ff7cdf10ac338a7d"  # catalogue checksum kept
    assert by_name["lfw-deepfunneled.tgz"].url.startswith("http://vis-www.cs.umass.edu/lfw/")
    own = resolve_dataset(DatasetConfig(name="mine", catalogue="lfw", images_subdir="x", aligned=True))
    assert (own.name, own.images_subdir, own.aligned) == ("mine", "x", True)


def test_files_without_url_need_a_local_path_or_mirror(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no public URL for glint360k_00, .*glint360k_06"):
        resolve_dataset(DatasetConfig(catalogue="glint360k"))
    mirrored = resolve_dataset(with_mirror(DatasetConfig(catalogue="glint360k"), str(tmp_path)))
    assert [f.url for f in mirrored.files] == [f"{tmp_path}/glint360k_{n:02d}" for n in range(7)]
    assert mirrored.files[0].md5 == "cf7433cbb915ac422230ba33176f4625"
    assert mirrored.concatenate_parts and mirrored.aligned and mirrored.format == "recordio"


def write_user_catalogue(path: Path, entries: dict) -> Path:
    path.write_text(yaml.safe_dump({"datasets": entries}))
    return path


def make_tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_prepare_folders_dataset_from_user_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    source.mkdir()
    archive = make_tgz(source / "faces.tgz", {"faces/Ann/Ann_0001.jpg": jpeg(1), "faces/Bob/Bob_0001.jpg": jpeg(2)})
    (source / "pairs.txt").write_text("1\t1\n")
    entry = {
        "description": "test faces",
        "contains": "two people",
        "licence": "test",
        "images_subdir": "faces",
        "files": [{"url": archive.as_uri(), "sha256": sha(archive)}, {"url": str(source / "pairs.txt")}],
    }
    monkeypatch.setenv("FACENET_DATASETS", str(write_user_catalogue(tmp_path / "mine.yaml", {"tiny": entry})))
    workspace = Workspace(tmp_path / "ws")
    dataset = DatasetConfig(catalogue="tiny")
    root = prepare_raw(dataset, workspace, progress=False)
    assert root == workspace.raw / "tiny" / "faces"
    assert sorted(p.name for p in root.iterdir()) == ["Ann", "Bob"]
    assert (workspace.raw / "tiny" / "pairs.txt").read_text() == "1\t1\n"
    marker = completion_marker(dataset, workspace)
    assert marker == workspace.raw / "tiny" / ".prepared.json" and marker.is_file()
    # A rerun trusts the marker: downloads may be deleted to save disk.
    for path in (workspace.downloads / "tiny").iterdir():
        path.unlink()
    assert prepare_raw(dataset, workspace, progress=False) == root
    assert not any((workspace.downloads / "tiny").iterdir())


def test_prepare_explicit_file_reference_and_missing_subdir(tmp_path: Path) -> None:
    archive = make_tgz(tmp_path / "a.tgz", {"other/Ann/Ann_0001.jpg": jpeg(1)})
    entry = {"description": "d", "images_subdir": "faces", "files": [{"url": str(archive)}]}
    catalogue = write_user_catalogue(tmp_path / "cat.yaml", {"broken": entry})
    with pytest.raises(FileNotFoundError, match="images_subdir 'faces' not found .*other"):
        prepare_raw(DatasetConfig(catalogue=f"{catalogue}#broken"), Workspace(tmp_path / "ws"), progress=False)


def make_glint_like(folder: Path) -> list[Path]:
    """A tiny glint360k: glint/train.rec + train.idx + lfw.bin, tar.gz split in three parts."""
    pack = folder / "pack" / "glint"
    pack.mkdir(parents=True)
    labels = [0, 0, 1]
    with RecordIOWriter(pack / "train.rec", pack / "train.idx") as writer:
        writer.write(pack_record(IRHeader(2, np.array([4, 6], np.float32), 0, 0)), key=0)
        for key, label in enumerate(labels, start=1):
            writer.write(pack_record(IRHeader(0, float(label), key, 0), jpeg(key)), key=key)
        writer.write(pack_record(IRHeader(2, np.array([1, 3], np.float32), 0, 0)), key=4)
        writer.write(pack_record(IRHeader(2, np.array([3, 4], np.float32), 0, 0)), key=5)
    issame = [True, False] * 10
    (pack / "lfw.bin").write_bytes(pickle.dumps(([jpeg(i) for i in range(40)], issame)))
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w:gz") as tar:
        tar.add(pack, arcname="glint")
    data = whole.getvalue()
    size = len(data) // 3 + 1
    parts = []
    for number in range(3):
        part = folder / f"glint_{number:02d}"
        part.write_bytes(data[number * size : (number + 1) * size])
        parts.append(part)
    return parts


def test_prepare_recordio_dataset_from_split_parts(tmp_path: Path) -> None:
    parts = make_glint_like(tmp_path)
    dataset = DatasetConfig(
        name="glintish",
        files=[DownloadFile(url=str(p), md5=hashlib.md5(p.read_bytes()).hexdigest()) for p in parts],
        concatenate_parts=True,
        format="recordio",
        aligned=True,
    )
    workspace = Workspace(tmp_path / "ws")
    root = prepare_raw(dataset, workspace, progress=False)
    assert root == workspace.raw / "glintish" / "images"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == [
        "id_0/0_1.jpg",
        "id_0/0_2.jpg",
        "id_1/1_3.jpg",
    ]
    lfw = workspace.raw / "glintish" / "verification" / "lfw"
    assert (lfw / "pairs.txt").read_text().startswith("10\t1\n")
    assert len(list(lfw.rglob("*.jpg"))) == 40


def test_prepare_recordio_path_and_plain_path(tmp_path: Path) -> None:
    make_glint_like(tmp_path)
    workspace = Workspace(tmp_path / "ws")
    dataset = DatasetConfig(name="g", path=str(tmp_path / "pack"), format="recordio")
    root = prepare_raw(dataset, workspace, progress=False)
    assert len(list(root.rglob("*.jpg"))) == 3
    assert completion_marker(dataset, workspace).is_file()
    plain = DatasetConfig(name="p", path=str(tmp_path / "pack"))
    assert prepare_raw(plain, workspace, progress=False) == tmp_path / "pack"
    assert completion_marker(plain, workspace) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_raw(DatasetConfig(name="q", path=str(tmp_path / "nope")), workspace, progress=False)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    download_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["download", *argv])
    return args.func(args)


def test_cli_url_list_convert_and_unpack(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(b"payload")
    assert run_cli([str(source), "--dest", str(tmp_path / "d"), "--sha256", sha(source), "--quiet"]) == 0
    assert (tmp_path / "d" / "file.bin").read_bytes() == b"payload"
    assert run_cli(["--list"]) == 0
    assert "glint360k:" in capsys.readouterr().out
    make_glint_like(tmp_path)
    assert run_cli(["--convert-bin", str(tmp_path / "pack/glint/lfw.bin"), "--dest", str(tmp_path / "lfw")]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"] == 20
    rec = str(tmp_path / "pack/glint/train.rec")
    assert run_cli(["--unpack_recordio", rec, "--dest", str(tmp_path / "img"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 3
    with pytest.raises(ValueError, match="--unpack_recordio needs --dest"):
        run_cli(["--unpack_recordio", rec])


def test_cli_catalogue_name_with_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_tgz(mirror / "set.tgz", {"set/A/A_0001.jpg": jpeg(3)})
    entry = {"description": "d", "images_subdir": "set", "files": [{"filename": "set.tgz"}]}
    monkeypatch.setenv("FACENET_DATASETS", str(write_user_catalogue(tmp_path / "c.yaml", {"mirrored": entry})))
    code = run_cli(["mirrored", "--mirror", str(mirror), "--workspace", str(tmp_path / "ws"), "--quiet"])
    assert code == 0
    assert Path(capsys.readouterr().out.strip()) == (tmp_path / "ws" / "raw" / "mirrored" / "set").resolve()


def tiny_entry(**extra) -> dict:
    return {"description": "d", **extra}


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"..": tiny_entry()}, "entry name '..' is not a safe file name"),
        ({".": tiny_entry()}, "entry name '.' is not a safe file name"),
        ({"x": tiny_entry(files=[{"url": "http://h/x.tgz", "filename": "../../../../x.bin"}])}, "is not a safe"),
        ({"x": tiny_entry(files=[{"url": "http://h/a/..%2F..%2Fx.bin"}])}, "contains a path separator"),
        ({"x": tiny_entry(files=[{"url": "http://h/a/%2E%2E"}])}, "refers to a folder"),
        ({"x": tiny_entry(files=[{"filename": "/etc/x.bin"}])}, "is not a safe"),
        ({"x": tiny_entry(max_extract_ratio=0)}, "greater than 0"),
        ({"x": tiny_entry(images_subdir="faces/../../..")}, "images_subdir component '..'"),
        ({"x": tiny_entry(images_subdir="/srv/faces")}, "must be relative"),
    ],
    ids=["dotdot", "dot", "filename", "encoded-url", "encoded-parent", "absolute", "ratio", "subdir", "subdir-abs"],
)
def test_catalogue_with_unsafe_names_fails_when_read(tmp_path: Path, entries: dict, message: str) -> None:
    catalogue = write_user_catalogue(tmp_path / "bad.yaml", entries)
    with pytest.raises(ValueError, match=message) as error:
        load_catalogue([catalogue])
    assert str(catalogue) in str(error.value)


def test_max_extract_ratio_comes_from_the_entry(tmp_path: Path) -> None:
    catalogue = write_user_catalogue(tmp_path / "c.yaml", {"dense": tiny_entry(max_extract_ratio=500)})
    resolved = resolve_dataset(DatasetConfig(catalogue=f"{catalogue}#dense", files=[DownloadFile(url="/x.tgz")]))
    assert resolved.max_extract_ratio == 500
    own = resolve_dataset(DatasetConfig(catalogue=f"{catalogue}#dense", max_extract_ratio=2.0))
    assert own.max_extract_ratio == 2.0


def test_prepare_merges_two_archives_and_restores_what_goes_missing(tmp_path: Path) -> None:
    part_a = make_tgz(tmp_path / "part_a.tgz", {"imgs/PersonA/a_1.jpg": jpeg(1), "imgs/PersonA/a_2.jpg": jpeg(2)})
    part_b = make_tgz(tmp_path / "part_b.tgz", {"imgs/PersonB/b_1.jpg": jpeg(3)})
    dataset = DatasetConfig(
        name="two", images_subdir="imgs", files=[DownloadFile(url=str(part_a)), DownloadFile(url=str(part_b))]
    )
    workspace = Workspace(tmp_path / "ws")
    root = prepare_raw(dataset, workspace, progress=False)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == [
        "PersonA/a_1.jpg",
        "PersonA/a_2.jpg",
        "PersonB/b_1.jpg",
    ]
    (root / "PersonA/a_2.jpg").unlink()
    assert prepare_raw(dataset, workspace, progress=False) == root  # the marker alone is not trusted
    assert (root / "PersonA/a_2.jpg").read_bytes() == jpeg(2)


@pytest.mark.parametrize("subdir", ["../../elsewhere", "/tmp", "a/../../b"])
def test_images_subdir_cannot_leave_the_dataset_folder(tmp_path: Path, subdir: str) -> None:
    archive = make_tgz(tmp_path / "a.tgz", {"faces/Ann/Ann_0001.jpg": jpeg(1)})
    dataset = DatasetConfig(name="d", images_subdir=subdir, files=[DownloadFile(url=str(archive))])
    with pytest.raises(ValueError, match="images_subdir .* is not a safe relative path|not a safe file name"):
        prepare_raw(dataset, Workspace(tmp_path / "ws"), progress=False)


def test_cli_refuses_unsafe_dataset_names(tmp_path: Path) -> None:
    for name in ("..", f"{tmp_path}/c.yaml#.."):
        with pytest.raises(ValueError, match="dataset name '..' is not a safe file name"):
            run_cli([name, "--workspace", str(tmp_path / "ws")])
    assert not (tmp_path / "ws").exists()
