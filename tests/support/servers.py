"""A team's servers for tests: a throwaway PostgreSQL cluster and an `mlflow server` proxying artifacts."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.processes import BIN, free_port, service_env, start, wait_for_http

DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
# The server's OS account when the tests run as root (PostgreSQL refuses to run as root).
POSTGRES_ACCOUNT = "postgres"


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs: Debian's newest, else pg_ctl's on PATH; None if absent."""
    versions = [p.parent for p in DEBIAN_POSTGRES.glob("*/bin/pg_ctl") if p.parent.parent.name.isdigit()]
    if versions:
        return max(versions, key=lambda folder: int(folder.parent.name))
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and Path(found).with_name("initdb").exists() else None


def postgres_account() -> str | None:
    """The account to run the server as: `postgres` for root, None (this one) otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError:
        return None
    return POSTGRES_ACCOUNT


def postgres_unavailable() -> str | None:
    """Why a throwaway PostgreSQL cluster cannot run here, or None when it can."""
    if postgres_bin() is None:
        return "PostgreSQL's server programs are not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and postgres_account() is None:
        return f"running as root without a {POSTGRES_ACCOUNT!r} account to run PostgreSQL as"
    return None


@dataclass(frozen=True)
class Postgres:
    """A running cluster on 127.0.0.1:`port`, trust authentication, superuser `postgres`."""

    bin: Path
    root: Path
    port: int
    account: str | None

    def url(self, database: str, driver: str | None = None) -> str:
        """A SQLAlchemy URL of `database` (`driver`: asyncpg, psycopg2, ... or the default)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        """Run one of the cluster's programs as the server's account; raise with its output on failure."""
        done = subprocess.run(
            [str(self.bin / program), *args],
            user=self.account,
            cwd=self.root,
            env=service_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} failed: {done.stdout}{done.stderr}{tail}")
        return done

    def create_database(self, name: str) -> None:
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """initdb a cluster into a fresh temporary folder, start it, and stop and delete it afterwards.

    Run as another account (root's tests), the folder is in /tmp: the tests' own temporary folders
    are root's, mode 0700, and that account could not reach it. Durability is off: the cluster
    lives for one test.
    """
    account = postgres_account()
    root = Path(tempfile.mkdtemp(prefix="facenet-postgres-", dir=None if account is None else "/tmp"))
    try:
        if account is not None:
            entry = pwd.getpwnam(account)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = Postgres(bin=postgres_bin(), root=root, port=free_port(), account=account)
        data = str(root / "data")
        cluster.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        cluster.run("pg_ctl", "-D", data, "-l", str(root / "server.log"), "-o", options, "-w", "-t", "120", "start")
        try:
            yield cluster
        finally:
            cluster.run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mlflow_server(tmp: Path, backend_store_uri: str, artifacts_destination: Path) -> tuple[subprocess.Popen, str]:
    """Start `mlflow server` on a free loopback port, proxying artifacts into `artifacts_destination`.

    Returns the process (stop it with support.processes.stop) and its tracking URI at once: the
    caller starts its other services, then waits with `wait_for_mlflow`.
    """
    port = free_port()
    args = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--backend-store-uri", backend_store_uri, "--serve-artifacts"]
    args += ["--artifacts-destination", str(artifacts_destination)]
    return start(args, service_env(), tmp / "mlflow-server.log", cwd=tmp), f"http://127.0.0.1:{port}"


def wait_for_mlflow(server: subprocess.Popen, uri: str, timeout: float = 300) -> None:
    """Wait until the server at `uri` answers its health check; fail early if it died."""
    wait_for_http(f"{uri}/health", timeout=timeout, process=server)
