"""Verified, resumable downloads: http(s) with Range resume and retries, file:// URLs and local paths.

A file is streamed to `<name>.part` beside its final name and renamed into place only after its
checksum matched, so a file under its final name is always complete. An interrupted transfer
resumes from the `.part` size when the server answers a Range request with 206 and starts again
from zero when it answers 200. Two processes fetching the same file take turns on `.<name>.lock`:
the second finds the file complete and does not download it again.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from facenet_core.fileio import exclusive_lock

CHUNK = 1 << 20
USER_AGENT = "facenet-flow-download"
# Client errors worth another try: timeout, conflict, rate limit; the rest are final.
RETRYABLE_HTTP = {408, 409, 425, 429}


class TransferError(Exception):
    """A transfer that stopped early and may succeed when retried."""


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
        raise ValueError(f"unsupported URL scheme {scheme!r} in {source!r}: use http(s)://, file:// or a local path")
    return Path(source).expanduser()


def default_filename(source: str) -> str:
    """The last path segment of a URL or path (percent-decoded)."""
    path = urllib.parse.urlparse(source).path if "://" in source else source
    name = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name in (".", ".."):
        raise ValueError(f"cannot derive a file name from {source!r}: pass filename=")
    return name


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


def _content_range_start(value: str | None) -> int | None:
    """First byte of a `Content-Range: bytes a-b/n` header."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _http_attempt(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request: resume `part` when the server honours Range, else rewrite it from zero."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:
            part.unlink(missing_ok=True)
            raise TransferError(f"server refused the resume range of {url}; starting again") from error
        if error.code >= 500 or error.code in RETRYABLE_HTTP:
            raise TransferError(f"HTTP {error.code} from {url}") from error
        message = f"HTTP {error.code} {error.reason} for {url}: check the URL or use a mirror or local path"
        raise ValueError(message) from error
    except (urllib.error.URLError, OSError) as error:
        raise TransferError(f"cannot reach {url}: {error}") from error
    with response:
        resumed = response.status == 206 and _content_range_start(response.headers.get("Content-Range")) == have
        if response.status == 206 and not resumed:
            part.unlink(missing_ok=True)
            raise TransferError(f"{url} answered a different range than asked; starting again")
        start = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
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
                raise TransferError(f"connection to {url} broke after {out.tell()} bytes: {error}") from error
            size = out.tell()
    if total is not None and size < total:
        raise TransferError(f"{url} ended after {size} of {total} bytes")


def _download_http(url: str, part: Path, retries: int, backoff: float, timeout: float, progress: bool) -> None:
    for attempt in range(retries + 1):
        try:
            _http_attempt(url, part, timeout, progress)
            return
        except TransferError as error:
            if attempt == retries:
                raise ConnectionError(f"download of {url} failed after {retries + 1} attempts: {error}") from error
            time.sleep(backoff * 2**attempt)


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

    A file already there that matches its checksum (or any file there when no checksum is
    given: only complete files ever get the final name) is not fetched again. A mismatch
    deletes the fetched file and raises ValueError naming the URL and both digests.
    """
    dest = Path(dest_dir) / (filename or default_filename(url_or_path))
    expected = _expected(sha256, md5)
    with exclusive_lock(dest.with_name(f".{dest.name}.lock")):
        if dest.is_file():
            if not _mismatches(dest, expected):
                return dest
            dest.unlink()
        part = dest.with_name(dest.name + ".part")
        local = _local_source(url_or_path)
        if local is not None:
            _copy_local(local, part, progress)
        else:
            _download_http(url_or_path, part, retries, backoff, timeout, progress)
        problems = _mismatches(part, expected)
        if problems:
            part.unlink(missing_ok=True)
            raise ValueError(
                f"checksum mismatch for {url_or_path}: {'; '.join(problems)}. The file was deleted; "
                "check the URL/mirror or the checksum in the dataset entry, then run again."
            )
        os.replace(part, dest)
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
