"""Verified, resumable downloads: http(s) with Range resume, file:// URLs and local paths.

A file is streamed to `<name>.part` beside its final name and renamed into place only after its
body provably ended (the declared length reached, the chunked encoding terminated, or a Range
request past the end answered 416) and its checksum, when one is given, matched. Without a
checksum the size and sha256 of what was fetched are recorded in `.<name>.fetched.json` and the
log says the file was not verified. The file name (from the URL or `filename=`) goes through
`safe_child`, so no name can write outside `dest_dir`.

Only transient errors (timeouts, refused or reset connections, short bodies, HTTP 5xx, 408, 429)
are retried; a 404 or a checksum mismatch fails at once. Two processes fetching the same file take
turns on `.<name>.lock`: the second finds the file complete and does not download it again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm import tqdm

from facenet_core.errors import UserError
from facenet_core.fileio import atomic_write_json
from facenet_core.safepath import safe_child, safe_name

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "facenet-flow-download"
# Client errors a later try can cure: request timeout, rate limit. 5xx are all retried.
RETRYABLE_HTTP = {408, 429}
# A server that keeps answering 206 without ever ending: give up after this many continuations.
MAX_CONTINUATIONS = 100


class DownloadError(UserError):
    """A download that failed in a way another try would repeat (404, checksum mismatch, bad URL)."""


class TransferError(DownloadError):
    """A transfer that stopped for a reason a later try may cure (timeout, reset, short body, 5xx)."""


def is_transient(error: BaseException) -> bool:
    """Whether retrying the download that raised `error` can help."""
    return isinstance(error, TransferError)


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...]) -> dict[str, str]:
    """Hex digests of a file for each named hashlib algorithm, in one read."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _expected(sha256: str | None, md5: str | None) -> dict[str, str]:
    expected = {}
    if sha256:
        expected["sha256"] = sha256.strip().lower()
    if md5:
        expected["md5"] = md5.strip().lower()
    return expected


def _mismatches(path: Path, expected: dict[str, str]) -> list[str]:
    """'algo: expected X, got Y' for every digest of `path` that differs from `expected`."""
    if not expected:
        return []
    actual = file_digests(path, tuple(expected))
    wrong = [name for name in expected if actual[name] != expected[name]]
    return [f"{name} expected {expected[name]}, got {actual[name]}" for name in wrong]


def _local_source(source: str) -> Path | None:
    """The local path named by a file:// URL or a plain path; None for http(s)."""
    scheme = urllib.parse.urlparse(source).scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(source).path))
    if scheme and len(scheme) > 1:
        raise DownloadError(f"unsupported URL scheme {scheme!r} in {source!r}: use http(s)://, file:// or a local path")
    return Path(source).expanduser()


def default_filename(source: str) -> str:
    """The last path segment of a URL or path, percent-decoded, checked to be one plain file name."""
    path = urllib.parse.urlparse(source).path if "://" in source else source
    name = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if not name:
        raise DownloadError(f"cannot derive a file name from {source!r}: pass a filename")
    return safe_name(name, what=f"file name of {source!r}")


def _copy_local(source: Path, part: Path, progress: bool) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist or is not a file (check the dataset's url or path)")
    part.unlink(missing_ok=True)
    try:
        os.link(source, part)
        return
    except OSError:
        pass
    with (
        open(source, "rb") as src,
        open(part, "wb") as dst,
        tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc=source.name, disable=not progress) as bar,
    ):
        for block in iter(lambda: src.read(CHUNK), b""):
            dst.write(block)
            bar.update(len(block))


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total length) of `Content-Range: bytes a-b/n` or `bytes */n`; None where absent."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    first = span.split("-", 1)[0]
    return (int(first) if first.isdigit() else None), (int(total) if total.isdigit() else None)


def _transient_reason(error: BaseException) -> bool:
    """Network failures that may pass: timeouts, refused/reset connections, temporary DNS failure."""
    if isinstance(error, socket.gaierror):
        return error.errno == socket.EAI_AGAIN
    return isinstance(error, TimeoutError | ConnectionError | http.client.HTTPException)


def _open(url: str, have: int, timeout: float):
    """The response to GET `url` (from byte `have` when > 0), or the HTTPError of a 416."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:
            return error
        if error.code >= 500 or error.code in RETRYABLE_HTTP:
            raise TransferError(f"HTTP {error.code} {error.reason} from {url}") from error
        raise DownloadError(
            f"HTTP {error.code} {error.reason} for {url}: check the URL or use a mirror or local path"
        ) from error
    except urllib.error.URLError as error:
        reason = error.reason
        kind = TransferError if isinstance(reason, BaseException) and _transient_reason(reason) else DownloadError
        raise kind(f"cannot reach {url}: {reason}") from error
    except OSError as error:
        kind = TransferError if _transient_reason(error) else DownloadError
        raise kind(f"cannot reach {url}: {error}") from error


def _http_attempt(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """One request into `part` (resumed when the server honours Range, else rewritten from zero).

    Returns True when the body provably ended, False when the server gave no length (the caller
    then asks for the bytes past the end). Raises TransferError for a body that ended early.
    """
    have = part.stat().st_size if part.exists() else 0
    response = _open(url, have, timeout)
    with response:
        if response.status == 416:
            _, total = _content_range(response.headers.get("Content-Range"))
            if have and total == have:
                return True
            part.unlink(missing_ok=True)
            raise TransferError(f"server refused the resume range of {url} (it holds {total} bytes); starting again")
        first, whole = _content_range(response.headers.get("Content-Range"))
        resumed = response.status == 206 and first == have
        if response.status == 206 and not resumed:
            part.unlink(missing_ok=True)
            raise TransferError(f"{url} answered a different range than asked; starting again")
        start = have if resumed else 0
        declared = response.length  # Content-Length, None when absent or chunked
        total = whole if resumed and whole is not None else (start + declared if declared is not None else None)
        name = part.name.removesuffix(".part")
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=name, disable=not progress) as bar,
        ):
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
            except (http.client.HTTPException, OSError) as error:
                if isinstance(error, http.client.IncompleteRead) and isinstance(error.partial, bytes):
                    out.write(error.partial)  # the body read before the break is good: kept to resume
                raise TransferError(f"connection to {url} broke after {out.tell()} bytes: {error!r}") from error
            size = out.tell()
        chunked = bool(getattr(response, "chunked", False))
    if total is not None and size != total:
        raise TransferError(f"{url} ended after {size} of {total} bytes")
    return total is not None or chunked


def _download_http(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Fetch `url` into `part` until its end is confirmed; a body of unknown length is followed by
    Range requests from its end until the server answers 416 (nothing more) or sends more."""
    for _ in range(MAX_CONTINUATIONS):
        if _http_attempt(url, part, timeout, progress):
            return
        size = part.stat().st_size
        response = _open(url, size, timeout)
        with response:
            first, total = _content_range(response.headers.get("Content-Range"))
            if response.status == 416 and total in (None, size):
                return
            if response.status != 206 or first != size:
                log.warning(
                    "%s sent no length and ignores Range requests: the end of its %d bytes cannot be confirmed",
                    url,
                    size,
                )
                return
        log.warning("%s closed the connection after %d bytes without a length; fetching the rest", url, size)
    raise TransferError(f"{url} kept sending more data after {MAX_CONTINUATIONS} continuations")


def _with_retries(url: str, part: Path, retries: int, backoff: float, timeout: float, progress: bool) -> None:
    for attempt in range(retries + 1):
        try:
            _download_http(url, part, timeout, progress)
            return
        except TransferError as error:
            if attempt == retries:
                if retries == 0:
                    raise
                raise TransferError(f"download of {url} failed after {retries + 1} attempts: {error}") from error
            log.warning("%s (attempt %d of %d); retrying", error, attempt + 1, retries + 1)
            time.sleep(backoff * 2**attempt)


def _record_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.fetched.json")


def _trusted(dest: Path, expected: dict[str, str]) -> bool:
    """Whether the file already at `dest` is complete: its checksum matches, or (no checksum) this
    module fetched it (a record with its size exists) and its size is unchanged."""
    if not dest.is_file():
        return False
    if expected:
        return not _mismatches(dest, expected)
    record = _record_path(dest)
    try:
        size = json.loads(record.read_text())["size"]
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s has no fetch record (an older or outside copy): fetching it again", dest)
        return False
    if size != dest.stat().st_size:
        log.warning("%s is %d bytes but %d were fetched: fetching it again", dest, dest.stat().st_size, size)
        return False
    return True


def _lock(dest: Path) -> FileLock:
    """Take the per-file lock, saying so in the log when another fetch holds it."""
    lock = FileLock(dest.with_name(f".{dest.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another fetch of %s to finish", dest)
        lock.acquire()
    return lock


def fetch(
    url_or_path: str,
    dest_dir: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    filename: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Bring one file into `dest_dir` (verified when a checksum is given) and return its path.

    A complete file already there is not fetched again. A checksum mismatch deletes the fetched
    file and raises DownloadError naming the URL and both digests; a transient failure still
    failing after `retries` more attempts raises TransferError (0: no retry here, the caller
    retries).
    """
    name = safe_name(filename, what="filename") if filename else default_filename(url_or_path)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = safe_child(dest_dir, name, what="download file name")
    expected = _expected(sha256, md5)
    lock = _lock(dest)
    try:
        if _trusted(dest, expected):
            return dest
        part = dest.with_name(dest.name + ".part")
        local = _local_source(url_or_path)
        if local is not None:
            _copy_local(local, part, progress)
        else:
            _with_retries(url_or_path, part, retries, backoff, timeout, progress)
        actual = file_digests(part, tuple(dict.fromkeys([*expected, "sha256"])))
        problems = [
            f"{algo} expected {value}, got {actual[algo]}" for algo, value in expected.items() if actual[algo] != value
        ]
        if problems:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"checksum mismatch for {url_or_path}: {'; '.join(problems)}. The file was deleted; "
                "check the URL/mirror or the checksum in the dataset entry, then run again."
            )
        digest, size = actual["sha256"], part.stat().st_size
        _record_path(dest).unlink(missing_ok=True)
        os.replace(part, dest)
        record = {"url": url_or_path, "size": size, "sha256": digest, "verified": sorted(expected)}
        atomic_write_json(_record_path(dest), record)
        if not expected:
            log.warning(
                "%s: no checksum given, so not verified; fetched %d bytes, sha256 %s (recorded in %s)",
                dest,
                size,
                digest,
                _record_path(dest).name,
            )
    finally:
        lock.release()
    return dest


def place_file(source: Path, target: Path) -> Path:
    """Put a downloaded file at `target` without copying when possible (hard link), atomically."""
    if target.exists() and target.stat().st_size == source.stat().st_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.placing")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)
    return target
