"""fetch(): served from a loopback HTTP server that can drop connections and ignore Range."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from facenet_core.data.download import TransferError, fetch

pytestmark = pytest.mark.timeout(60)

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, every byte position distinguishable


class FileServer:
    """Serves `files` on 127.0.0.1; `drops[path]` first responses send only half the body."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, int] = {}
        self.honour_range = True
        self.range_shift = 0  # >0: a broken server that answers another range than asked
        self.delay = 0.0  # seconds before each body is sent
        self.requests: list[tuple[str, str | None, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body = server.files.get(self.path)
                if body is None:
                    server.requests.append((self.path, None, 404))
                    self.send_error(404)
                    return
                requested = self.headers.get("Range")
                start = 0
                if requested and server.honour_range:
                    start = int(requested.removeprefix("bytes=").split("-")[0]) - server.range_shift
                status = 206 if start else 200
                server.requests.append((self.path, requested, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                time.sleep(server.delay)
                chunk = body[start:]
                if server.drops.get(self.path, 0) > 0:
                    server.drops[self.path] -= 1
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def statuses(self, path: str) -> list[int]:
        return [status for served, _, status in self.requests if served == path]


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_normal_download_verified_and_not_fetched_again(server: FileServer, tmp_path: Path) -> None:
    server.files["/a/data.bin"] = PAYLOAD
    path = fetch(f"{server.url}/a/data.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path == tmp_path / "data.bin"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    again = fetch(f"{server.url}/a/data.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert again == path
    assert server.statuses("/a/data.bin") == [200]


def test_dropped_connection_resumes_with_range(server: FileServer, tmp_path: Path) -> None:
    server.files["/big.bin"] = PAYLOAD
    server.drops["/big.bin"] = 1
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    path = fetch(f"{server.url}/big.bin", tmp_path, md5=md5, backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.statuses("/big.bin") == [200, 206]
    assert server.requests[1][1] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_ignoring_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    server.files["/big.bin"] = PAYLOAD
    server.drops["/big.bin"] = 1
    server.honour_range = False
    path = fetch(f"{server.url}/big.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [status for _, _, status in server.requests] == [200, 200]
    assert server.requests[1][1] is not None  # it asked for a range and got the whole file


def test_wrong_content_range_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    server.files["/big.bin"] = PAYLOAD
    server.range_shift = 100
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD[:1000])
    path = fetch(f"{server.url}/big.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/big.bin", "bytes=1000-", 206), ("/big.bin", None, 200)]


def test_stale_part_file_is_resumed(server: FileServer, tmp_path: Path) -> None:
    server.files["/big.bin"] = PAYLOAD
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD[:1000])
    path = fetch(f"{server.url}/big.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/big.bin", "bytes=1000-", 206)]


def test_wrong_checksum_deletes_file_and_names_both_digests(server: FileServer, tmp_path: Path) -> None:
    server.files["/data.bin"] = PAYLOAD
    wrong = "0" * 64
    url = f"{server.url}/data.bin"
    with pytest.raises(ValueError) as error:
        fetch(url, tmp_path, sha256=wrong, backoff=0, progress=False)
    message = str(error.value)
    assert url in message and wrong in message and sha(PAYLOAD) in message
    assert [p.name for p in tmp_path.iterdir()] == [".data.bin.lock"]  # no data, no .part


def test_present_file_with_wrong_content_is_fetched_again(server: FileServer, tmp_path: Path) -> None:
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin").write_bytes(b"stale")
    path = fetch(f"{server.url}/data.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_missing_file_fails_without_retrying(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HTTP 404"):
        fetch(f"{server.url}/nothing.tgz", tmp_path, backoff=0, progress=False)
    assert server.statuses("/nothing.tgz") == [404]


def test_retries_exhausted_raise_transfer_error(server: FileServer, tmp_path: Path) -> None:
    server.files["/flaky.bin"] = PAYLOAD
    server.drops["/flaky.bin"] = 10
    server.honour_range = False
    with pytest.raises(TransferError, match="after 3 attempts"):
        fetch(f"{server.url}/flaky.bin", tmp_path, retries=2, backoff=0, progress=False)
    assert len(server.statuses("/flaky.bin")) == 3


def test_local_path_and_file_url(tmp_path: Path) -> None:
    source = tmp_path / "src" / "archive.tgz"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    by_path = fetch(str(source), tmp_path / "a", sha256=sha(PAYLOAD), progress=False)
    by_url = fetch(source.as_uri(), tmp_path / "b", md5=hashlib.md5(PAYLOAD).hexdigest(), progress=False)
    assert by_path.read_bytes() == by_url.read_bytes() == PAYLOAD
    assert by_url.name == "archive.tgz"
    assert source.read_bytes() == PAYLOAD


def test_local_source_missing_or_bad_scheme(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.tgz"):
        fetch(str(tmp_path / "nope.tgz"), tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        fetch("ftp://example.org/x.tgz", tmp_path / "d", progress=False)


def test_concurrent_fetches_of_one_file_download_it_once(server, tmp_path):
    server.files["/slow.bin"] = PAYLOAD
    server.delay = 0.5
    results: list[Path] = []

    def fetch_it() -> None:
        results.append(fetch(server.url + "/slow.bin", tmp_path, sha256=sha(PAYLOAD), progress=False))

    workers = [threading.Thread(target=fetch_it) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == [tmp_path / "slow.bin"] * 2
    assert (tmp_path / "slow.bin").read_bytes() == PAYLOAD
    assert server.statuses("/slow.bin") == [200]
    assert not (tmp_path / "slow.bin.part").exists()
