"""fetch(): served from a loopback HTTP server that drops connections, omits lengths, ignores Range, fails."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.http_server import FileServer, serving

from facenet_core.ingest.download import DownloadError, TransferError, fetch
from facenet_core.safepath import UnsafeNameError

pytestmark = pytest.mark.timeout(60)

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, every byte position distinguishable


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as srv:
        yield srv


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


def record_of(path: Path) -> dict:
    return json.loads(path.with_name(f".{path.name}.fetched.json").read_text())


def test_no_length_body_closed_early_is_completed_with_range(server: FileServer, tmp_path: Path, caplog) -> None:
    server.files["/nolen.bin"] = PAYLOAD
    server.no_length = True
    server.drops["/nolen.bin"] = 1
    with caplog.at_level(logging.WARNING):
        path = fetch(f"{server.url}/nolen.bin", tmp_path, backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    half = len(PAYLOAD) // 2
    # 200 cut short; the probe past its end gets 206 (more data), then the rest, whose length is known.
    assert [(r, s) for _, r, s in server.requests] == [(None, 200), (f"bytes={half}-", 206), (f"bytes={half}-", 206)]
    assert record_of(path) == {
        "url": f"{server.url}/nolen.bin",
        "size": len(PAYLOAD),
        "sha256": sha(PAYLOAD),
        "verified": [],
    }
    assert "closed the connection after 51200 bytes without a length" in caplog.text
    assert "no checksum given, so not verified" in caplog.text


def test_no_length_and_no_range_support_is_kept_with_a_warning(server: FileServer, tmp_path: Path, caplog) -> None:
    server.files["/plain.bin"] = PAYLOAD
    server.no_length = True
    server.honour_range = False
    with caplog.at_level(logging.WARNING):
        path = fetch(f"{server.url}/plain.bin", tmp_path, backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert "ignores Range requests: the end of its 102400 bytes cannot be confirmed" in caplog.text
    assert record_of(path)["sha256"] == sha(PAYLOAD)


def test_unterminated_chunked_body_is_never_promoted(server: FileServer, tmp_path: Path) -> None:
    server.files["/chunk.bin"] = PAYLOAD
    server.chunked = True
    server.honour_range = False
    server.drops["/chunk.bin"] = 5
    with pytest.raises(TransferError, match="failed after 2 attempts: connection to .* broke"):
        fetch(f"{server.url}/chunk.bin", tmp_path, retries=1, backoff=0, progress=False)
    assert not (tmp_path / "chunk.bin").exists()
    assert (tmp_path / "chunk.bin.part").stat().st_size == len(PAYLOAD) // 2  # kept to resume
    server.drops["/chunk.bin"] = 0
    path = fetch(f"{server.url}/chunk.bin", tmp_path, backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_transient_statuses_are_retried(server: FileServer, tmp_path: Path, status: int) -> None:
    server.files["/busy.bin"] = PAYLOAD
    server.errors["/busy.bin"] = [status, status]
    path = fetch(f"{server.url}/busy.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.statuses("/busy.bin") == [status, status, 200]


@pytest.mark.parametrize("status", [403, 404, 410])
def test_final_statuses_fail_at_once(server: FileServer, tmp_path: Path, status: int) -> None:
    server.files["/gone.bin"] = PAYLOAD
    server.errors["/gone.bin"] = [status] * 5
    with pytest.raises(DownloadError, match=f"HTTP {status} .* for {server.url}/gone.bin") as error:
        fetch(f"{server.url}/gone.bin", tmp_path, retries=4, backoff=0, progress=False)
    assert not isinstance(error.value, TransferError)
    assert server.statuses("/gone.bin") == [status]


def test_checksum_mismatch_is_not_retried(server: FileServer, tmp_path: Path) -> None:
    server.files["/data.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="checksum mismatch") as error:
        fetch(f"{server.url}/data.bin", tmp_path, md5="0" * 32, retries=4, backoff=0, progress=False)
    assert not isinstance(error.value, TransferError)
    assert server.statuses("/data.bin") == [200]


def test_connection_refused_is_retried_then_one_transfer_error(tmp_path: Path) -> None:
    with serving() as closed:
        url = f"{closed.url}/x.bin"
    with pytest.raises(TransferError, match=r"download of .*/x.bin failed after 3 attempts: cannot reach"):
        fetch(url, tmp_path, retries=2, backoff=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.bin.lock"]


def test_file_without_fetch_record_or_with_another_size_is_fetched_again(server: FileServer, tmp_path: Path) -> None:
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin").write_bytes(PAYLOAD[:100])  # a truncated copy left by an older version
    path = fetch(f"{server.url}/data.bin", tmp_path, backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    fetch(f"{server.url}/data.bin", tmp_path, backoff=0, progress=False)
    assert server.statuses("/data.bin") == [200]  # recorded: trusted
    path.write_bytes(PAYLOAD[:10])
    fetch(f"{server.url}/data.bin", tmp_path, backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD and server.statuses("/data.bin") == [200, 200]


@pytest.mark.parametrize(
    "segment",
    ["%2Fsomewhere%2Fevil.bin", "..%2F..%2Fx.bin", "%2E%2E", "a%5Cb.bin", "x%00.bin", "n" * 300],
    ids=["encoded-absolute", "encoded-dotdot", "encoded-parent", "backslash", "nul", "too-long"],
)
def test_unsafe_url_names_are_refused_before_any_request(server: FileServer, tmp_path: Path, segment: str) -> None:
    with pytest.raises(UnsafeNameError, match="is not a safe file name"):
        fetch(f"{server.url}/any/{segment}", tmp_path / "dest", progress=False)
    assert server.requests == []
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("name", ["../x.bin", "/tmp/x.bin", "a/b.bin", "..", "a\\b"])
def test_unsafe_filename_argument_is_refused(tmp_path: Path, name: str) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"x")
    with pytest.raises(UnsafeNameError, match="filename"):
        fetch(str(source), tmp_path / "dest", filename=name, progress=False)
    assert not (tmp_path / "dest").exists()


def test_complete_no_length_body_is_confirmed_by_a_416(server: FileServer, tmp_path: Path) -> None:
    server.files["/whole.bin"] = PAYLOAD
    server.no_length = True
    path = fetch(f"{server.url}/whole.bin", tmp_path, sha256=sha(PAYLOAD), backoff=0, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [(r, s) for _, r, s in server.requests] == [(None, 200), (f"bytes={len(PAYLOAD)}-", 416)]
    assert record_of(path)["verified"] == ["sha256"]
