"""The service itself for fault tests, as production runs it (gunicorn with the worker class of
portfolio_project/server.py), pointed at the test database (the Redis to kill and freeze
beside it is tests/support/processes.py's ``OwnRedis``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from scripts.cluster.nodes import server_command
from tests.support.processes import ROOT, database_url, free_port, wait_for


class AppServer:
    """The production server on a free port, against the current test database (so a
    ``django_db(transaction=True)`` test's committed rows are what it serves)."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.application_name = f"app-server-{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(connection.settings_dict),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "ERROR",
            # libpq names this server's connections, so a test can count them apart from the
            # connections other tests of the same process left to the same database
            "PGAPPNAME": self.application_name,
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

    def start(self, *, workers: int = 3, health_timeout: float = 1) -> AppServer:
        self.process = subprocess.Popen(
            [*server_command(self.port, workers=workers), "--timeout", "60"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_text()[-2000:]}")
            try:
                return requests.get(f"{self.url}/api/v1/health/", timeout=health_timeout).status_code in (200, 503)
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
