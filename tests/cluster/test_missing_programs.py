"""A machine without PgBouncer or Redis (a fresh clone on a laptop): the tests that need them are
skipped, saying what to install, unless REQUIRE_PROGRAMS=1 (CI) makes that a failure; and
`make cluster-test` says in one line what to install instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, python_env, require_program


def test_a_test_needing_a_missing_program_is_skipped_saying_how_to_install_it(monkeypatch):
    # given: a developer's machine
    monkeypatch.delenv("REQUIRE_PROGRAMS", raising=False)

    # when / then
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_program("no-such-server")
    assert str(skipped.value) == "no-such-server is not installed (apt-get install no-such-server)"


def test_ci_fails_a_test_needing_a_missing_program_instead_of_skipping_it(monkeypatch):
    # given: CI, which installs the programs and requires them
    monkeypatch.setenv("REQUIRE_PROGRAMS", "1")

    # when / then
    with pytest.raises(pytest.fail.Exception) as failed:
        require_program("no-such-server")
    assert str(failed.value) == (
        "no-such-server is not installed (apt-get install no-such-server), and REQUIRE_PROGRAMS=1 requires it"
    )


def test_cluster_test_without_redis_says_in_one_line_what_to_install():
    # given: a PATH with the virtualenv's programs only (no redis-server; pgbouncer, in /usr/sbin, is found there)
    env = python_env(PATH=str(Path(sys.executable).parent))

    # when
    done = subprocess.run(
        [sys.executable, "scripts/cluster/run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    # then
    missing = "redis-server" if Path("/usr/sbin/pgbouncer").exists() else "pgbouncer and redis-server"
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"make cluster-test needs {missing}: apt-get install {missing.replace(' and ', ' ')}\n"
