"""The identity-folder listing the manifest scan and the crop stage share: sorted, hidden folders and
files out, links to folders in, names that are not UTF-8 in, unreadable entries only when asked."""

import os

import pytest

from facenet_core.detect.shards import list_shards
from facenet_core.identities import list_identities


@pytest.fixture
def root(tmp_path):
    """bob/, alice/, Zed/, .shards/, a file, a link to alice, a broken link, a link loop, a non-UTF-8 folder."""
    root = tmp_path / "people"
    for name in ("bob", "alice", "Zed", ".shards"):
        (root / name).mkdir(parents=True)
    (root / "notes.txt").write_text("not an identity")
    (root / "alias").symlink_to(root / "alice", target_is_directory=True)
    (root / "gone").symlink_to(tmp_path / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    os.mkdir(os.path.join(os.fsencode(root), b"caf\xe9"))
    return root


def test_folders_and_links_to_folders_sorted_by_name(root):
    assert list_identities(root) == ["Zed", "alias", "alice", "bob", "caf\udce9"]


def test_an_unreadable_entry_is_listed_only_when_asked(root):
    assert list_identities(root, include_unreadable=True) == ["Zed", "alias", "alice", "bob", "caf\udce9", "loop"]


def test_the_crop_shards_take_the_listing_less_the_names_that_are_not_utf8(root):
    assert list_shards(root, 2) == [["Zed", "alias"], ["alice", "bob"]]


def test_a_root_that_is_no_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere is not a folder of identity folders"):
        list_identities(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="file is not a folder"):
        list_identities(tmp_path / "file")
