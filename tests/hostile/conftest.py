"""Hostile-input suite: corpora built at test time, each case asserting the message, the exit code and
that nothing outside the target changed."""

from pathlib import Path

import pytest
from support.http_server import FileServer, serving


@pytest.fixture
def server() -> FileServer:
    """A loopback HTTP server of test files."""
    with serving() as srv:
        yield srv


@pytest.fixture
def sibling(tmp_path: Path) -> Path:
    """A folder a user keeps beside the target, holding a file: no case may change it."""
    folder = tmp_path / "sibling"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    return folder
