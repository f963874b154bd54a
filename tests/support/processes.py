"""Start and stop the real services some tests need (all on 127.0.0.1), and never leave them running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from facenet_core.env import TELEMETRY_OFF

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(**extra: str) -> dict[str, str]:
    """This process's environment with telemetry off, without a Prefect API of a test harness."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, **TELEMETRY_OFF, **extra}


def start(args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start a service in its own process group, output to `log`."""
    handle = open(log, "ab")  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    process.log_handle = handle  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the whole group (twice: Prefect workers want a second one), then SIGKILL."""
    for _ in range(2):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace / 2)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
    process.log_handle.close()  # type: ignore[attr-defined]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode} before port {port} opened")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listened on port {port} within {timeout:.0f} s")


def prefect_server(tmp: Path, database_url: str | None = None) -> tuple[subprocess.Popen, dict[str, str]]:
    """A real `prefect server start` on a free loopback port; returns it and the env pointing at it.

    `database_url`: the server's database (PREFECT_SERVER_DATABASE_CONNECTION_URL); default SQLite in tmp.
    """
    port = free_port()
    env = service_env(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    server_env = env if database_url is None else {**env, "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url}
    server = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        server_env,
        tmp / "server.log",
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health", timeout=240, process=server)
    except BaseException:
        stop(server)
        raise
    return server, env
