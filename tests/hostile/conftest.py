"""Hostile-input suite: corpora built at test time, each case asserting the message, the exit code and
that nothing outside the target changed."""

import pytest
from support.http_server import FileServer, serving


@pytest.fixture
def server() -> FileServer:
    """A loopback HTTP server of test files."""
    with serving() as srv:
        yield srv
