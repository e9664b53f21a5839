"""`make run` as a user runs it, in a sandbox: a copy of the project (its own `.data/`, so
the embedded database, the admin login file and the lock are the sandbox's, never the
checkout's), sharing the checkout's virtualenv.

``MakeRun`` starts ``make run`` in a session of its own, as a terminal would, so that
``interrupt()`` is a Ctrl-C: SIGINT to the whole foreground process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import requests

from tests.support.processes import ROOT, python_env, wait_for

BANNER = "Ctrl-C stops the server and the order processor."
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".data", "test-artifacts", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache"
)


def make_sandbox(directory: Path) -> Path:
    # pytest makes its temporary folders 0700. As root, the embedded PostgreSQL runs as its own
    # system user, which must traverse them to reach the data and the binaries (through the
    # .venv link below); the wheel opens the data's parents itself when it starts a server, but
    # not the way to its binaries, which `embedded_db stop` runs as that user.
    for folder in (directory, *directory.parents):
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(folder.stat().st_mode | 0o055)
    project = directory / "project"
    shutil.copytree(ROOT, project, ignore=IGNORED, symlinks=True)
    (project / ".venv").symlink_to((ROOT / ".venv").resolve())
    return project


class MakeRun:
    def __init__(self, project: Path, port: int, **env: str) -> None:
        self.project = project
        self.port = port
        self.log_path = project / f"make-run-{port}-{time.monotonic_ns()}.log"
        # -o install: the shared virtualenv is ready; never let a test reinstall it.
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "install", "run"],
            cwd=project,
            env=python_env(PORT=str(port), **env),
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for_banner(self, timeout: float = 90) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited ({self.process.returncode}):\n{self.output()}")
            return BANNER in self.output()

        wait_for(ready, timeout=timeout, interval=0.1, what="the make run banner")

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=10)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def processor_pids(self) -> list[int]:
        pids = []
        for child in self.descendants():
            try:
                if "process_orders" in child.cmdline():
                    pids.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        return pids

    def interrupt(self, timeout: float = 60) -> None:
        """Ctrl-C: SIGINT to the foreground process group, make and run.sh alike.

        make itself then always reports "make: *** [Makefile:N: run] Interrupt" and dies of
        the signal, as on any Ctrl-C'd make; what run.sh controls is its own exit status,
        which make would report as "Error N" were it not 0."""
        children = self.descendants()
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"left running after Ctrl-C: {[p.pid for p in alive]}"
        assert code == -signal.SIGINT, (code, self.output())
        assert "Error" not in self.output(), self.output()

    def kill(self) -> None:
        """Clean-up after a failed test: everything this run started."""
        children = self.descendants()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def embedded_db(project: Path, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-m", "portfolio_project.embedded_db", command],
        cwd=project,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
