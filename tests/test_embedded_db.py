"""The embedded database's command line, which scripts/run.sh relies on."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def embedded_db(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portfolio_project.embedded_db", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_says_whether_the_server_runs_and_its_exit_code_agrees():
    # when
    result = embedded_db("status")

    # then
    match = re.fullmatch(r"embedded PostgreSQL (running|not running); data in (.+)\n", result.stdout)
    assert match, result.stdout + result.stderr
    assert result.returncode == (0 if match[1] == "running" else 1)
    assert Path(match[2]) == ROOT / ".data" / "postgres"


def test_path_prints_the_data_directory_that_run_sh_locks_beside():
    # when
    result = embedded_db("path")

    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{ROOT / '.data' / 'postgres'}\n"
