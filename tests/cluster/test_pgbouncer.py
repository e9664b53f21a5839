"""The money flows through PgBouncer in transaction pooling mode (docs/DESIGN.md, "Scaling").

A PgBouncer (Debian's package) on a free port in front of our own embedded PostgreSQL; the
suite's order, cash and processor tests run against it in a child pytest with
``DATABASE_POOLING=transaction``. Each transaction may get a different server connection, so
anything that keeps session state across transactions (a WITH HOLD cursor, a prepared
statement, a session advisory lock, a SET) would fail or misbehave there."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from scripts.cluster import nodes
from tests.support.processes import require_program

MONEY_FLOWS = [
    "tests/orders/test_services.py",  # buys, sells, limits, cancels, process_resting_orders, expiry
    "tests/orders/test_order_kinds.py",  # stops, notional orders, time in force
    "tests/orders/test_replace_order.py",
    "tests/orders/test_cancel_all_and_close_positions.py",
    "tests/orders/test_cost_basis.py",
    "tests/orders/test_concurrency.py",  # real threads racing one account, two processors
    "tests/orders/test_transactions.py",
    "tests/balances/test_services.py",  # deposits, withdrawals, adjustments, registration
    "tests/orders/test_api.py",  # the same over HTTP
]


@pytest.fixture(scope="module")
def bouncer():
    require_program("pgbouncer")
    base = Path(tempfile.mkdtemp(prefix="portfolio-pgbouncer-"))
    cluster = nodes.Cluster(base)
    try:
        primary = cluster.primary()
        # Few server connections: transactions of one client really do move between them.
        process, port = nodes.pgbouncer(base, primary, cluster.run_as, pool_size=4)
        cluster.adopt(process)
        yield primary, port
    finally:
        cluster.close()


def pgbouncer_stats(port: int) -> dict[str, dict]:
    # The admin console speaks the simple query protocol only.
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/pgbouncer", autocommit=True) as conn:
        cursor = conn.cursor()
        cursor.execute("SHOW STATS", prepare=False)
        names = [column.name for column in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_money_flows_pass_through_pgbouncer_in_transaction_mode(bouncer):
    # given
    primary, port = bouncer
    env = nodes.django_env(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/portfolio",
        DATABASE_POOLING="transaction",
    )
    expected = sum(len(re.findall(r"^def test_", Path(nodes.ROOT / path).read_text(), re.M)) for path in MONEY_FLOWS)

    # when
    run = subprocess.run(
        [str(nodes.VENV_BIN / "pytest"), "-q", "-p", "no:randomly", "--create-db", *MONEY_FLOWS],
        cwd=nodes.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )

    # then every test ran and passed, and their transactions went through PgBouncer
    summary = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= expected, summary  # parametrized tests count more than once
    assert "skipped" not in summary
    assert "failed" not in summary
    stats = pgbouncer_stats(port)
    assert stats["test_portfolio"]["total_xact_count"] > 1000
    # and PgBouncer itself never had more server connections than its pool
    servers = primary.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'test_portfolio'")[0][0]
    assert servers <= 4
