"""CSV exports stream in constant memory: the peak RSS of the server process that serves an
export of 10,000 rows and of 1,000,000 rows (docs/DESIGN.md, "Reset and exports").

    DATABASE_URL=postgresql://... python scripts/bench/csv_export_memory.py [--small 10000]
        [--large 1000000] [--servers wsgi,asgi] [--exports orders,activities] [--port 8137]
        [--rebuild] [--json PATH]

Builds the database ``csv_export_bench`` (``BENCH_CSV_DB`` to name another) on the server of
DATABASE_URL: two users, ``csv_small`` and ``csv_large``, each with that many orders and that
many cash ledger rows, written with generate_series (reused while the sizes are unchanged;
``--rebuild`` to build anyway). Then, for each server and export, starts a fresh server process
(one worker), warms it with one JSON request, downloads the export of each user through it
(counting the lines), and reads the worker's peak resident memory (VmHWM in /proc) after the
small export and again after the large one. Servers:

- ``wsgi``: gunicorn with one sync worker (``portfolio_project.wsgi``), a synchronous stream;
- ``asgi``: uvicorn (``portfolio_project.asgi``), an asynchronous stream;
- ``asgi-gunicorn``: gunicorn with ``portfolio_project.server.Worker``, when that module exists.

Prints a table and writes bench-results/csv_export_memory.json (or ``--json``); exits non-zero
when a large export raised the peak by 20 MB or more over the small one's.
"""

# ruff: noqa: S603  (the bench runs its own fixed commands: gunicorn, uvicorn, manage.py)

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DB_NAME = os.environ.get("BENCH_CSV_DB", "csv_export_bench")
LIMIT_MB = 20
PASSWORD = "csv-bench-password-0"

ORDERS_SQL = """
INSERT INTO orders_order (order_id, user_id, asset_id, order_type, quantity, order_price, total_amount,
    executed_price, held_amount, time_in_force, status, failure_reason, failure_code, failure_details,
    client_order_id, created_at, updated_at, filled_at)
SELECT gen_random_uuid(), %(user_id)s, 'CSVB', CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, 0.01,
       NULL, 500.00, 50000, 0, 'gtc', 'COMPLETED', '', '', '{}', 'bench-' || g,
       %(start)s::timestamptz + make_interval(secs => g), %(start)s::timestamptz + make_interval(secs => g),
       %(start)s::timestamptz + make_interval(secs => g)
FROM generate_series(1, %(rows)s) AS g
"""

CASH_SQL = """
INSERT INTO balances_cashtransaction
    (user_id, transaction_type, amount, balance_after, order_id, client_reference, note, actor_id, created_at)
SELECT %(user_id)s, 'DEPOSIT', 1.00, 10000.00 + g, NULL, NULL, 'bench deposit ' || g, NULL,
       %(start)s::timestamptz + make_interval(secs => g)
FROM generate_series(1, %(rows)s) AS g
"""


def bench_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the bench creates its own database on it).")
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def admin_connect(url: str) -> psycopg.Connection:
    parts = urllib.parse.urlsplit(url)
    return psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def built_for(url: str) -> str | None:
    with admin_connect(url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [DB_NAME]
        ).fetchone()
    return row[0] if row else None


def build(url: str, sizes: dict[str, int]) -> None:
    """The database, migrated, with a user per size, each with ``rows`` orders and cash rows."""
    with admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    os.environ["DATABASE_URL"] = url
    setup_django()
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.db import connection

    from assets.models import Asset

    Asset.objects.create(asset_id="CSVB", name="CSV bench", reference_price=Decimal("50000"))
    started = time.perf_counter()
    for username, rows in sizes.items():
        user = get_user_model().objects.create_user(username=username, password=PASSWORD)
        with connection.cursor() as cursor:
            params = {"user_id": user.pk, "rows": rows, "start": "2026-01-01T00:00:00Z"}
            cursor.execute(ORDERS_SQL, params)
            cursor.execute(CASH_SQL, params)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE orders_order")
        cursor.execute("VACUUM ANALYZE balances_cashtransaction")
    connection.close()
    with admin_connect(url) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{DB_NAME}\" IS '{json.dumps(sizes)}'")
    print(f"built {DB_NAME}: {sizes} in {time.perf_counter() - started:.0f} s", flush=True)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")
    import django

    django.setup()


def tokens_and_rows(sizes: dict[str, int]) -> tuple[dict[str, str], dict[tuple[str, str], int]]:
    """Each user's token, and how many rows each export of each user has."""
    setup_django()
    from django.contrib.auth import get_user_model

    from accounts.services import issue_token
    from balances.models import CashTransaction
    from orders.models import Order

    users = {username: get_user_model().objects.get(username=username) for username in sizes}
    rows = {}
    for username, user in users.items():
        rows[username, "orders"] = Order.objects.filter(user=user).count()
        rows[username, "activities"] = CashTransaction.objects.filter(user=user).count()  # deposits only
    return {username: issue_token(user=user).key for username, user in users.items()}, rows


class Server:
    """One server process with one worker, on ``port``, against the bench database."""

    def __init__(self, kind: str, port: int, url: str) -> None:
        self.kind, self.port = kind, port
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "THROTTLE_USER_RATE": "1000000/min",
            "LOG_LEVEL": "WARNING",
        }
        self.log = tempfile.NamedTemporaryFile(prefix=f"csv-bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        bind = f"127.0.0.1:{self.port}"
        if self.kind == "wsgi":
            return [str(VENV_BIN / "gunicorn"), "portfolio_project.wsgi:application", "--bind", bind, "--workers", "1"]
        if self.kind == "asgi":
            return [str(VENV_BIN / "uvicorn"), "portfolio_project.asgi:application", "--port", str(self.port)]
        return [
            str(VENV_BIN / "gunicorn"),
            "portfolio_project.asgi:application",
            "--worker-class",
            "portfolio_project.server.Worker",
            "--bind",
            bind,
            "--workers",
            "1",
        ]

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [*self.command(), "--timeout", "600"] if self.kind != "asgi" else self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.kind} server exited; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/api/v1/health/", timeout=2).status_code in (200, 503):
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.kind} server did not answer; see {self.log.name}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pid(self) -> int:
        """The process that serves requests: gunicorn's one worker, or uvicorn itself."""
        if self.kind == "asgi":
            return self.process.pid
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.worker_pid()}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return round(kb / 1024, 1)


def download(server: Server, path: str, token: str) -> tuple[int, int, float]:
    """(lines, bytes, seconds) of an export, read as it streams and thrown away."""
    started = time.perf_counter()
    lines = size = 0
    with requests.get(
        f"{server.url}{path}",
        params={"format": "csv"},
        headers={"Authorization": f"Token {token}"},
        stream=True,
        timeout=600,
    ) as response:
        response.raise_for_status()
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8", response.headers
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return lines, size, time.perf_counter() - started


EXPORTS = {"orders": "/api/v1/orders/", "activities": "/api/v1/activities/"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--servers", default="wsgi,asgi")
    parser.add_argument("--exports", default="orders,activities")
    parser.add_argument("--port", type=int, default=8137)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results" / "csv_export_memory.json")
    args = parser.parse_args()

    url = bench_url()
    sizes = {"csv_small": args.small, "csv_large": args.large}
    if args.rebuild or built_for(url) != json.dumps(sizes):
        build(url, sizes)
    os.environ["DATABASE_URL"] = url
    keys, expected = tokens_and_rows(sizes)
    servers = [s for s in args.servers.split(",") if s]
    if "asgi-gunicorn" in servers and not (ROOT / "portfolio_project" / "server.py").exists():
        print("asgi-gunicorn: portfolio_project/server.py is not there; skipped")
        servers.remove("asgi-gunicorn")

    results, failed = [], False
    print(f"{'server':<14} {'export':<11} {'rows':>9} {'lines':>9} {'MB sent':>8} {'s':>6} {'peak RSS MB':>12}")
    for kind in servers:
        for export in args.exports.split(","):
            with Server(kind, args.port, url) as server:
                warm_up = {"Authorization": f"Token {keys['csv_small']}"}
                requests.get(f"{server.url}{EXPORTS[export]}", headers=warm_up, timeout=60).raise_for_status()
                warm = server.peak_rss_mb()
                peaks = {}
                for username in sizes:
                    rows = expected[username, export]
                    lines, size, seconds = download(server, EXPORTS[export], keys[username])
                    assert lines == rows + 1, (kind, export, username, lines, rows)
                    peaks[username] = server.peak_rss_mb()
                    print(
                        f"{kind:<14} {export:<11} {rows:>9} {lines:>9} {size / 1e6:>8.1f} {seconds:>6.1f}"
                        f" {peaks[username]:>12}",
                        flush=True,
                    )
                growth = round(peaks["csv_large"] - peaks["csv_small"], 1)
                ok = growth < LIMIT_MB
                failed |= not ok
                results.append(
                    {
                        "server": kind,
                        "export": export,
                        "warm_peak_rss_mb": warm,
                        "small_rows": args.small,
                        "small_peak_rss_mb": peaks["csv_small"],
                        "large_rows": args.large,
                        "large_peak_rss_mb": peaks["csv_large"],
                        "growth_mb": growth,
                        "pass": ok,
                    }
                )
                print(f"{'':<14} {export:<11} growth {growth} MB: {'PASS' if ok else 'FAIL'} (< {LIMIT_MB} MB)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
