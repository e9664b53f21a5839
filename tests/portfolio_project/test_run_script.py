"""`make run` (scripts/run.sh) with real processes: it refuses a busy port or a data directory
another `make run` owns before starting or stopping anything, restarts a crashed order
processor while the API keeps serving, reads clean from start to Ctrl-C (issue 13), keeps
answering while idle clients hold half-sent requests on every worker and more (issue 20), and
the example bot finds it on its port (issue 21). Each run is a sandboxed copy of the project
with its own embedded database."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from tests.portfolio_project.make_run import BANNER, MakeRun, embedded_db, make_sandbox
from tests.support.processes import free_port, python_env, wait_for


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
    assert re.search(r'"GET /api/v1/balance/ HTTP/1.1" 401$', output, re.MULTILINE), output
    # make's own report of a Ctrl-C, if it makes one, is the only line after run.sh's last
    assert re.search(r"\nstopped\.\n(make: \*\*\* \[Makefile:\d+: run\] Interrupt\n)?$", output), output


def test_a_warm_start_shows_the_admin_login_once(project, runs):
    # given: a project whose admin login exists (the module's fixture made it)
    login = (project / ".data" / "admin-login.txt").read_text().strip()

    # when: make run starts on that data
    run = start(runs, project)
    run.wait_for_banner()
    run.interrupt()

    # then: the banner shows it, and nothing before it repeats it
    assert login.startswith("Login:    admin / ")
    assert run.output().count(login.removeprefix("Login:    ")) == 1, run.output()


def test_the_example_bot_trades_against_make_run_on_its_port(project, runs):
    # given: make run on a port that is not the default 8000
    run = start(runs, project)
    run.wait_for_banner()

    # when: the example bot, as the README says to run it, with nothing set
    bot = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "examples/alpaca_bot.py"],
        cwd=project,
        env=python_env(BOT_SECONDS="1", BOT_INTERVAL="0.2", BOT_DIP_PCT="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then: it found the server through .data/alpaca-demo.env, traded and tidied up
    assert f"APCA_API_BASE_URL=http://127.0.0.1:{run.port}\n" in (project / ".data" / "alpaca-demo.env").read_text()
    assert bot.returncode == 0, bot.stdout + bot.stderr
    assert "dip: bought " in bot.stdout
    assert "done: cash " in bot.stdout
    run.interrupt()


def half_sent_requests(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send the start of a request and then nothing: a slow or
    idle client (slowloris), which a sync worker would wait on until its timeout."""
    sockets = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(b"POST /api/v1/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 64\r\n")
        sockets.append(client)
    return sockets


def test_idle_half_sent_requests_on_every_worker_and_ten_times_more_do_not_hold_health(project, runs):
    # given: make run with its three workers, each of them a connection that sent half a request
    workers = 3
    run = MakeRun(project, free_port(), WEB_WORKERS=str(workers))
    runs.append(run)
    run.wait_for_banner()
    assert run.get("/api/v1/health/").status_code == 200  # each worker has loaded the app
    with contextlib.ExitStack() as stack:
        for client in half_sent_requests(run.port, workers):
            stack.enter_context(client)

        # when
        as_many = [timed_health(run) for _ in range(5)]
        for client in half_sent_requests(run.port, 9 * workers):  # ten times as many in all
            stack.enter_context(client)
        ten_times = [timed_health(run) for _ in range(5)]

    # then: /health/ answers at once throughout (a sync worker held each until its 30 s timeout)
    assert [status for status, _ in as_many + ten_times] == [200] * 10
    assert max(seconds for _, seconds in as_many + ten_times) < 1, (as_many, ten_times)
    run.interrupt()


def timed_health(run: MakeRun) -> tuple[int, float]:
    started = time.monotonic()
    response = run.get("/api/v1/health/")
    return response.status_code, time.monotonic() - started
