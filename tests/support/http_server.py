"""A loopback HTTP file server (127.0.0.1 only) that misbehaves on request: dropped connections,
no Content-Length, unterminated chunked bodies, ignored Range headers, error statuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` by path; every request is recorded as (path, Range header, status).

    drops[path]: that many responses send only half the body, then close.
    errors[path]: statuses to answer first, one per request (e.g. [503, 503] then the file).
    no_length: send no Content-Length (the body ends when the connection closes).
    chunked: send the body chunked (a dropped response leaves the chunked encoding unterminated).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, int] = {}
        self.errors: dict[str, list[int]] = {}
        self.honour_range = True
        self.range_shift = 0  # >0: a broken server that answers another range than asked
        self.delay = 0.0  # seconds before each body is sent
        self.no_length = False
        self.chunked = False
        self.requests: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def _record(self, path: str, requested: str | None, status: int) -> None:
        with self.lock:
            self.requests.append((path, requested, status))

    def _take(self, table: dict, path: str):
        with self.lock:
            pending = table.get(path)
            if isinstance(pending, list):
                return pending.pop(0) if pending else None
            if pending:
                table[path] -= 1
                return True
            return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        requested = handler.headers.get("Range")
        status = self._take(self.errors, path)
        body = self.files.get(path)
        if status is None and body is None:
            status = 404
        if status is not None:
            self._record(path, requested, status)
            handler.send_error(status)
            return
        start = 0
        if requested and self.honour_range:
            start = int(requested.removeprefix("bytes=").split("-")[0]) - self.range_shift
            if start >= len(body):
                self._record(path, requested, 416)
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        status = 206 if start else 200
        self._record(path, requested, status)
        chunked = self.chunked
        if chunked:
            handler.protocol_version = "HTTP/1.1"
        handler.send_response(status)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
            handler.send_header("Connection", "close")
        elif not self.no_length:
            handler.send_header("Content-Length", str(len(body) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        handler.end_headers()
        time.sleep(self.delay)
        chunk = body[start:]
        dropped = self._take(self.drops, path)
        if dropped:
            chunk = chunk[: len(chunk) // 2]
        if chunked:
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            if not dropped:
                handler.wfile.write(b"0\r\n\r\n")
        else:
            handler.wfile.write(chunk)
        handler.wfile.flush()
        handler.close_connection = True

    def statuses(self, path: str) -> list[int]:
        return [status for served, _, status in self.requests if served == path]


@contextmanager
def serving() -> Iterator[FileServer]:
    """A started FileServer, shut down on exit."""
    server = FileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
