"""extract(): tar/tgz/zip, split parts, refusal of escaping entries, idempotence and redo after a kill."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from facenet_core.ingest import extract as extract_module
from facenet_core.ingest.extract import (
    ArchiveLimitError,
    ExtractConflictError,
    UnsafeArchiveError,
    archive_kind,
    extract,
    is_extracted,
    missing_entries,
)

FILES = {"people/Ann/Ann_0001.jpg": b"ann-one", "people/Ann/Ann_0002.jpg": b"ann-two", "people/Bob/Bob_0001.jpg": b"b"}


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz", extra=()) -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize("mode, suffix", [("w:gz", "tgz"), ("w", "tar"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz")])
def test_tar_variants(tmp_path: Path, mode: str, suffix: str) -> None:
    archive = make_tar(tmp_path / f"a.{suffix}", FILES, mode)
    assert archive_kind(archive) == "tar"
    target = extract(archive, tmp_path / "out", progress=False)
    marker = json.loads((target / f".extracted.a.{suffix}.json").read_text())
    assert {k: v for k, v in tree(target).items() if not k.startswith(".")} == FILES
    assert marker["entries"] == 3 and len(marker["sha256"]) == 64


def test_zip(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    assert archive_kind(archive) == "zip"
    target = extract(archive, tmp_path / "out", progress=False)
    assert tree(target / "people") == {k.removeprefix("people/"): v for k, v in FILES.items()}
    assert is_extracted(archive, target)


def test_split_parts_are_concatenated(tmp_path: Path) -> None:
    whole = make_tar(tmp_path / "whole.tgz", FILES).read_bytes()
    size = len(whole) // 3 + 1
    parts = []
    for number in range(3):
        part = tmp_path / f"set_{number:02d}"
        part.write_bytes(whole[number * size : (number + 1) * size])
        parts.append(part)
    target = extract(parts, tmp_path / "out", progress=False)
    assert tree(target / "people")["Ann/Ann_0002.jpg"] == b"ann-two"
    marker = json.loads((target / ".extracted.set_00.json").read_text())
    assert [entry["name"] for entry in marker["archives"]] == ["set_00", "set_01", "set_02"]
    assert marker["sha256"] == hashlib.sha256(whole).hexdigest()


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"/etc/evil": b"x"}, "absolute path"),
        ({"people/../../evil": b"x"}, "contains '..'"),
    ],
)
def test_tar_names_escaping_are_refused(tmp_path: Path, bad: dict[str, bytes], message: str) -> None:
    archive = make_tar(tmp_path / "bad.tgz", {**FILES, **bad})
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "evil").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".extract.lock"]  # checked before writing


@pytest.mark.parametrize(
    "info",
    [
        link("people/escape", "../../outside"),
        link("people/abs", "/etc/passwd"),
        link("people/hard", "../outside", tarfile.LNKTYPE),
    ],
    ids=["relative-symlink", "absolute-symlink", "hardlink"],
)
def test_links_pointing_outside_are_refused(tmp_path: Path, info: tarfile.TarInfo) -> None:
    archive = make_tar(tmp_path / "bad.tar", FILES, "w", extra=[info])
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        extract(archive, tmp_path / "out", progress=False)
    assert not is_extracted(archive, tmp_path / "out")


def test_device_file_is_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("people/dev")
    device.type = tarfile.CHRTYPE
    archive = make_tar(tmp_path / "bad.tar", FILES, "w", extra=[device])
    with pytest.raises(UnsafeArchiveError, match="device file"):
        extract(archive, tmp_path / "out", progress=False)


def test_inside_symlink_is_extracted(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar", FILES, "w", extra=[link("people/Ann/latest.jpg", "Ann_0002.jpg")])
    target = extract(archive, tmp_path / "out", progress=False)
    assert (target / "people/Ann/latest.jpg").read_bytes() == b"ann-two"


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize(
    "entry, message",
    [(("../evil.txt", b"x"), "contains '..'"), (zip_symlink("people/up", "../../evil"), "points outside")],
    ids=["dotdot", "symlink"],
)
def test_zip_escaping_entries_are_refused(tmp_path: Path, entry, message: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr(*entry)
    with pytest.raises(UnsafeArchiveError, match=message):
        extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "ok.txt").exists()


def test_idempotent_and_killed_extraction_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_tar(tmp_path / "a.tgz", FILES)
    target = tmp_path / "out"
    extract(archive, target, progress=False)
    (target / "people/Ann/Ann_0001.jpg").write_bytes(b"edited")
    extract(archive, target, progress=False)
    assert (target / "people/Ann/Ann_0001.jpg").read_bytes() == b"edited"  # marker matched: untouched

    # A run killed after moving half the tree: stale entries, a leftover staging folder, no marker.
    (target / ".extracted.a.tgz.json").unlink()
    (target / "people/Bob/Bob_0001.jpg").unlink()
    (target / ".partial.a.tgz").mkdir()
    (target / ".partial.a.tgz/junk").write_bytes(b"junk")
    extract(archive, target, progress=False)
    edited = {**FILES, "people/Ann/Ann_0001.jpg": b"edited"}  # what is there stays, what is missing comes back
    assert {k: v for k, v in tree(target).items() if not k.startswith(".")} == edited
    assert not (target / ".partial.a.tgz").exists()

    # Killed in the middle of reading the archive: nothing half-written is left, no marker.
    (target / ".extracted.a.tgz.json").unlink()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(extract_module, "_extract_tar", killed)
    with pytest.raises(KeyboardInterrupt):
        extract(archive, target, progress=False)
    assert not (target / ".partial.a.tgz").exists()
    assert not is_extracted(archive, target)


def test_changed_archive_replaces_its_own_files_and_deletes_nothing(tmp_path: Path, caplog) -> None:
    archive = make_tar(tmp_path / "a.tgz", FILES)
    target = extract(archive, tmp_path / "out", progress=False)
    make_tar(archive, {"people/Cy/Cy_0001.jpg": b"cy", "people/Bob/Bob_0001.jpg": b"bob-v2"})
    extract(archive, target, progress=False)
    assert (target / "people/Cy/Cy_0001.jpg").read_bytes() == b"cy"
    assert (target / "people/Bob/Bob_0001.jpg").read_bytes() == b"bob-v2"  # its own file: new version
    assert (target / "people/Ann/Ann_0001.jpg").read_bytes() == b"ann-one"  # not in the new version: kept
    assert "2 files from an earlier version of this archive are not in it any more" in caplog.text


def test_not_an_archive_and_truncated_archive(tmp_path: Path) -> None:
    text = tmp_path / "pairs.txt"
    text.write_text("10\t300\n")
    assert archive_kind(text) is None
    with pytest.raises(ValueError, match="is not a tar"):
        extract(text, tmp_path / "out", progress=False)
    whole = make_tar(tmp_path / "a.tgz", FILES).read_bytes()
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="damaged or truncated"):
        extract(cut, tmp_path / "out2", progress=False)


def test_archives_sharing_a_top_level_folder_are_merged(tmp_path: Path) -> None:
    part_a = make_tar(tmp_path / "part_a.tar", {"imgs/PersonA/a1.jpg": b"a1", "imgs/PersonA/a2.jpg": b"a2"}, "w")
    part_b = make_tar(tmp_path / "part_b.tar", {"imgs/PersonB/b1.jpg": b"b1"}, "w")
    target = tmp_path / "out"
    extract(part_a, target, progress=False)
    extract(part_b, target, progress=False)
    expected = {"imgs/PersonA/a1.jpg": b"a1", "imgs/PersonA/a2.jpg": b"a2", "imgs/PersonB/b1.jpg": b"b1"}
    assert {k: v for k, v in tree(target).items() if not k.startswith(".")} == expected
    assert is_extracted(part_a, target) and is_extracted(part_b, target)
    assert missing_entries(target) == []

    # A rerun notices an incomplete tree and restores only what is missing.
    (target / "imgs/PersonA/a2.jpg").unlink()
    assert missing_entries(target) == ["imgs/PersonA/a2.jpg"]
    assert not is_extracted(part_a, target) and is_extracted(part_b, target)
    extract(part_a, target, progress=False)
    assert {k: v for k, v in tree(target).items() if not k.startswith(".")} == expected


def test_tree_left_by_the_version_that_replaced_folders_is_repaired(tmp_path: Path) -> None:
    """Version 1 wrote both markers but kept only the last archive's imgs/: a rerun notices and merges."""
    part_a = make_tar(tmp_path / "part_a.tar", {"imgs/PersonA/a1.jpg": b"a1"}, "w")
    part_b = make_tar(tmp_path / "part_b.tar", {"imgs/PersonB/b1.jpg": b"b1"}, "w")
    target = tmp_path / "out"
    (target / "imgs/PersonB").mkdir(parents=True)
    (target / "imgs/PersonB/b1.jpg").write_bytes(b"b1")
    for part in (part_a, part_b):
        old = {"version": 1, "archives": extract_module._identity([part]), "sha256": "0" * 64, "entries": 1}
        (target / f".extracted.{part.name}.json").write_text(json.dumps(old))
    extract(part_a, target, progress=False)
    extract(part_b, target, progress=False)
    assert {k: v for k, v in tree(target).items() if not k.startswith(".")} == {
        "imgs/PersonA/a1.jpg": b"a1",
        "imgs/PersonB/b1.jpg": b"b1",
    }


def test_files_the_archive_did_not_write_are_never_replaced(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tgz", FILES)
    target = tmp_path / "out"
    (target / "people/Ann").mkdir(parents=True)
    (target / "people/Ann/Ann_0001.jpg").write_bytes(b"mine")  # the user's, differs from the archive's
    (target / "people/Bob").write_bytes(b"a file where the archive has a folder")
    (target / "people/Ann/notes.txt").write_bytes(b"notes")
    before = tree(target)
    with pytest.raises(ExtractConflictError, match="2 entries would replace files .* people/Ann/Ann_0001.jpg"):
        extract(archive, target, progress=False)
    assert {k: v for k, v in tree(target).items() if k != ".extract.lock"} == before  # nothing moved or deleted
    assert not any(p.name.startswith(".partial") for p in target.iterdir())
    (target / "people/Bob").unlink()
    (target / "people/Ann/Ann_0001.jpg").write_bytes(b"ann-one")  # same bytes as the archive's: fine
    extract(archive, target, progress=False)
    assert (target / "people/Ann/notes.txt").read_bytes() == b"notes"
    assert tree(target / "people/Bob") == {"Bob_0001.jpg": b"b"}


def zeros_tgz(path: Path, size: int) -> Path:
    return make_tar(path, {"big/zeros.bin": bytes(size)})


def test_archive_bomb_is_refused_before_writing(tmp_path: Path) -> None:
    archive = zeros_tgz(tmp_path / "bomb.tgz", 8 << 20)  # ~8 KB compressed, 8 MiB extracted
    ratio = (8 << 20) / archive.stat().st_size
    assert ratio > 100
    with pytest.raises(
        ArchiveLimitError, match=r"bomb.tgz: extracts to 8,388,608 bytes, .*bound 100:1.*max_extract_ratio"
    ):
        extract(archive, tmp_path / "out", progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".extract.lock"]
    extract(archive, tmp_path / "out", progress=False, max_ratio=ratio + 1)  # a catalogue entry may allow more
    assert (tmp_path / "out/big/zeros.bin").stat().st_size == 8 << 20


def test_zip_bomb_is_refused_from_its_directory(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(8 << 20))
    with pytest.raises(ArchiveLimitError, match="bomb.zip: extracts to 8,388,608 bytes"):
        extract(archive, tmp_path / "out", progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".extract.lock"]


def test_archive_larger_than_the_free_space_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_tar(tmp_path / "a.tgz", FILES)
    monkeypatch.setattr(extract_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    with pytest.raises(ArchiveLimitError, match="extracts to 15 bytes but .* has only 10 bytes free"):
        extract(archive, tmp_path / "out", progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".extract.lock"]


def test_root_entry_and_unsafe_member_names(tmp_path: Path) -> None:
    with_root = make_tar(tmp_path / "root.tar", FILES, "w", extra=[tarfile.TarInfo("./")])
    assert tree(extract(with_root, tmp_path / "ok", progress=False) / "people")["Bob/Bob_0001.jpg"] == b"b"
    for index, name in enumerate(["people\\..\\..\\evil", "people/" + "n" * 300, "C:/evil"]):
        archive = make_tar(tmp_path / f"bad{index}.tar", {**FILES, name: b"x"}, "w")
        with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
            extract(archive, tmp_path / f"out{index}", progress=False)
        assert [p.name for p in (tmp_path / f"out{index}").iterdir()] == [".extract.lock"]
