"""Real processes for fault tests: a Redis of our own to kill and freeze, and the service
itself under gunicorn, as production runs it, pointed at the test database.

Never the machine's shared Redis: each ``RedisServer`` is a ``redis-server`` on a free port
with no persistence, stopped (and thawed first, if frozen) when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout} s")
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _accepts(self.port), timeout=10, what="redis-server")
        return self

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.frozen:
            self.thaw()
        self.process.kill()
        self.process.wait(timeout=10)


class AppServer:
    """gunicorn serving the project on a free port, against the current test database (so a
    ``django_db(transaction=True)`` test's committed rows are what it serves)."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        db = connection.settings_dict
        database_url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "ERROR",
            **env,
        }
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - gunicorn writes to it until stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """What gunicorn and the app wrote to stderr (tracebacks of a 500 would be there)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def start(self, *, workers: int = 3) -> AppServer:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "portfolio_project.wsgi:application",
                *("--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)),
                *("--timeout", "60", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_text()[-2000:]}")
            try:
                return requests.get(f"{self.url}/api/v1/health/", timeout=1).status_code in (200, 503)
            except requests.RequestException:
                return False

        wait_for(answers, timeout=30, what="gunicorn")
        return self

    def token(self, user, password: str = "a-long-passphrase-42") -> str:
        """An API token for ``user``, asked of the server the way a client logs in. The tests'
        fast password hasher is unknown to the server's settings, so the password is set with
        Django's default hasher first."""
        hasher = PBKDF2PasswordHasher()
        user.password = hasher.encode(password, hasher.salt())
        user.save(update_fields=["password"])
        response = requests.post(
            f"{self.url}/api/v1/auth/token/", json={"username": user.username, "password": password}, timeout=30
        )
        response.raise_for_status()
        return response.json()["token"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
