"""`make run` (scripts/run.sh) with real processes: it refuses a busy port or a data directory
another `make run` owns before starting or stopping anything, restarts a crashed order
processor while the API keeps serving, and reads clean from start to Ctrl-C (SPEC section
10, issue 13). Each run is a sandboxed copy of the project with its own embedded database."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from tests.portfolio_project.make_run import BANNER, MakeRun, embedded_db, make_sandbox
from tests.processes import free_port, python_env, wait_for


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A sandboxed project whose embedded database is created and migrated once, then
    stopped, so that each make run below starts it (and so stops it on Ctrl-C)."""
    project = make_sandbox(tmp_path_factory.mktemp("make-run"))
    python = str(project / ".venv" / "bin" / "python")
    for command in (["migrate", "--no-input", "-v", "0"], ["seed_assets"], ["ensure_admin"]):
        subprocess.run(
            [python, "manage.py", *command], cwd=project, env=python_env(), check=True, capture_output=True, timeout=180
        )
    embedded_db(project, "stop")
    yield project
    embedded_db(project, "stop")


@pytest.fixture
def runs():
    started: list[MakeRun] = []
    yield started
    for run in started:
        run.kill()


def start(runs: list[MakeRun], project, port: int | None = None) -> MakeRun:
    run = MakeRun(project, port or free_port())
    runs.append(run)
    return run


def assert_refused_before_starting(run: MakeRun, code: int, message: str) -> None:
    """``run`` failed saying ``message``, and never printed the banner of a run that serves."""
    assert code != 0
    output = run.output()
    assert message in output
    assert BANNER not in output


def test_a_busy_port_is_refused_before_anything_starts(project, runs):
    # given: something listens on the port; the embedded database is not running
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        # when
        started = time.monotonic()
        run = start(runs, project, port)
        code = run.process.wait(timeout=60)

        # then: a clear refusal, no banner, and nothing started
        assert_refused_before_starting(
            run,
            code,
            f"make run: port {port} on 127.0.0.1 is already in use (another make run?). "
            "Stop that, or choose another port: PORT=8001 make run",
        )
        assert "API:" not in run.output()
        assert time.monotonic() - started < 15
    assert embedded_db(project, "status").returncode == 1  # the database was never started


def test_a_data_directory_locked_by_another_run_is_refused_before_anything_starts(project, runs):
    # given: another make run holds the data directory's lock
    lock_path = project / ".data" / "postgres.run.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with lock_path.open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.seek(0)
        lock.truncate()
        lock.write("4242\n")
        lock.flush()

        # when
        run = start(runs, project)
        code = run.process.wait(timeout=60)

    # then
    assert_refused_before_starting(
        run,
        code,
        f"make run: the embedded database in {project / '.data' / 'postgres'} is in use by another make run "
        "(pid 4242). Stop that one first, or give this one its own: EMBEDDED_PG_DIR=/some/dir PORT=8001 make run",
    )
    assert embedded_db(project, "status").returncode == 1


def test_a_second_run_on_the_same_data_refuses_and_leaves_the_first_serving(project, runs):
    # given: a make run serving, which started the embedded database
    first = start(runs, project)
    first.wait_for_banner()

    # when: a second make run on the same data directory (another port), then one on the same port
    second = start(runs, project)
    second_code = second.process.wait(timeout=60)
    third = start(runs, project, first.port)
    third_code = third.process.wait(timeout=60)

    # then: both refused, the first still serves with its database
    assert_refused_before_starting(second, second_code, "is in use by another make run (pid ")
    assert_refused_before_starting(third, third_code, f"make run: port {first.port} on 127.0.0.1 is already in use")
    health = first.get("/api/v1/health/")
    assert health.status_code == 200
    assert health.json()["database"] == "ok"

    # and: the first one's Ctrl-C stops its database, which it started
    first.interrupt()
    assert embedded_db(project, "status").returncode == 1


def test_a_crashed_processor_is_restarted_while_the_api_keeps_serving(project, runs):
    # given
    run = start(runs, project)
    run.wait_for_banner()
    [processor] = wait_for(run.processor_pids, timeout=30, what="the order processor")

    # when: the processor dies (kill -9)
    os.kill(processor, signal.SIGKILL)

    # then: the API serves throughout and a new processor is started after a short backoff
    assert run.get("/api/v1/health/").status_code == 200
    [restarted] = wait_for(
        lambda: [pid for pid in run.processor_pids() if pid != processor], timeout=30, what="a new processor"
    )
    assert restarted != processor
    assert "make run: the order processor exited (status 137); restarting it in 1s" in run.output()
    assert run.get("/api/v1/health/").status_code == 200
    run.interrupt()


def test_a_run_reads_clean_from_start_to_ctrl_c(project, runs):
    # given: a make run that served the requests a first visit makes
    run = start(runs, project)
    run.wait_for_banner()
    assert run.get("/static/admin/css/base.css").status_code == 200
    assert run.get("/api/v1/").status_code in (200, 401)
    assert run.get("/api/v1/balance/").status_code == 401
    assert run.get("/no-such-page/").status_code == 404
    assert run.get("/admin/").status_code == 200  # the login page, after a redirect

    # when: Ctrl-C
    run.interrupt()

    # then: run.sh exited 0 (make says no "Error 130"), and nothing reads as a failure
    output = run.output()
    for alarming in ("Traceback", "Error", "error", "SIGQUIT", "WARNING", "not running", "Killed"):
        assert alarming not in output, output
    assert "/static/" not in output, output
    assert re.search(r'"GET /api/v1/balance/ HTTP/1.1" 401 ', output), output
    # make's own report of a Ctrl-C, if it makes one, is the only line after run.sh's last
    assert re.search(r"\nstopped\.\n(make: \*\*\* \[Makefile:\d+: run\] Interrupt\n)?$", output), output
