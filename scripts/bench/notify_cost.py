"""What announcing an order event costs the one-statement market buy, by NOTIFY or by the
outbox (pgbench).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/notify_bench .venv/bin/python scripts/bench/notify_cost.py

Creates (or empties) that database, migrates it, funds BENCH_USERS users, then runs pgbench
(``-M prepared``, as the service prepares the buy) on four copies of the market buy, built
from ``orders.settlement``'s pieces and ``orders.events.order_event_sql``:

- ``buy``: ``MARKET_BUY_SQL`` as it is;
- ``buy+notify``: the same writes in the shape an event needs (the order row returned whole,
  the holding's quantity, the asset ledger row as a CTE), with ``pg_notify('order_events',
  ...)`` of the event from the inserted row, nobody listening;
- ``buy+notify+listener``: the same while a session LISTENs and reads every notification;
- ``buy+outbox``: the same shape, the event written to the outbox (``orders.events``,
  ``order_event_insert_sql``: UNLOGGED) instead of notified;
- ``buy+outbox-logged``: the same into a logged copy of the outbox table.

Each at 8 and 16 clients, unthrottled (the most the database does), RUNS times, interleaved,
medians; then each at the service's rate (``-R`` BENCH_RATE, 650/s) for latency. PostgreSQL
serialises the commits of notifying transactions on one global lock: the unthrottled runs
show what that costs at the top, the rate-limited ones what it costs at the service's pace.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")

USERS = int(os.environ.get("BENCH_USERS", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
RATE = int(os.environ.get("BENCH_RATE", "650"))
CLIENTS = (8, 16)

PARAMS = {
    "user_id": ":uid",
    "asset_id": "'BTC'",
    "order_id": "gen_random_uuid()",
    "quantity": "0.001",
    "order_price": "NULL",
    "price": "50000",
    "cost": "50.00",
    "debit": "-50.00",
    "client_order_id": "NULL",
    "expires_at": "NULL",
    "notional": "NULL",
    "stop_price": "NULL",
    "triggered_at": "NULL",
    "time_in_force": "'gtc'",
    "placed_via": "'api'",
    "api_key_id": "NULL",
    "price_source": "'bench'",
    "at": "now()",
}


def scripts() -> dict[str, str]:
    from orders import settlement
    from orders.events import Event, order_event_insert_sql, order_event_json_sql
    from orders.models import OrderEventRecord

    shaped = f"""
WITH debit AS (
    UPDATE balances_usdbalance SET current_balance = current_balance - %(cost)s, updated_at = %(at)s
    WHERE user_id = %(user_id)s AND current_balance - held >= %(cost)s
    RETURNING current_balance
), holding AS (
    {settlement.add_bought_quantity_sql(source="FROM debit", **settlement._BOUGHT)}
    RETURNING b.id, b.quantity
), placed AS (
    {settlement._PLACED_SQL}
    RETURNING *
), cash AS (
    {settlement._cash_sql(side="BUY", source="FROM debit, placed", order="placed", balance="debit")}
), asset_row AS (
    {settlement._asset_row_sql(side="BUY", source="FROM placed", order="placed")}
    RETURNING id
)
SELECT placed.order_id{{notify}} FROM placed, holding, asset_row
"""
    event = {
        "event": Event.FILL,
        "row": "placed",
        "at": "placed.filled_at",
        "fill_quantity": "placed.quantity",
        "fill_price": "placed.executed_price",
        "position_quantity": "holding.quantity",
        "execution_id": "asset_row.id",
    }
    notify = f", pg_notify('order_events', {order_event_json_sql(**event)}::text)"
    # The outbox (orders.events): the event as a row, a step of the same statement.
    outbox = order_event_insert_sql(source="FROM placed, holding, asset_row", **event)
    base = shaped.replace("\nSELECT placed.order_id{notify} FROM placed, holding, asset_row\n", "")
    with_outbox = base + f", event AS ({outbox})\nSELECT placed.order_id FROM placed"
    logged_table = OrderEventRecord._meta.db_table
    variants = {
        "buy": settlement.MARKET_BUY_SQL,
        "buy+notify": shaped.replace("{notify}", notify),
        "buy+notify+listener": shaped.replace("{notify}", notify),
        "buy+outbox": with_outbox,
        "buy+outbox-logged": with_outbox.replace(f"INSERT INTO {logged_table} ", "INSERT INTO bench_outbox "),
    }
    head = "\\set uid random(:minuid, :maxuid)\n"
    return {name: head + " ".join((sql % PARAMS).split()) + ";\n" for name, sql in variants.items()}


def prepare_database(url: str) -> tuple[int, int]:
    import django
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from balances.models import UsdBalance
    from core.sql import insert_sql

    call_command("migrate", verbosity=0)
    call_command("seed_assets", verbosity=0)
    users = insert_sql(
        get_user_model(),
        source="FROM generate_series(1, %s) g",
        password="'!'",
        last_login="NULL",
        is_superuser="false",
        username="'bench' || g",
        first_name="''",
        last_name="''",
        email="''",
        is_staff="false",
        is_active="true",
        date_joined="now()",
    )
    balances = insert_sql(
        UsdBalance,
        source="FROM u",
        user_id="id",
        current_balance="1000000",
        held="0",
        created_at="now()",
        updated_at="now()",
    )
    with connection.cursor() as cur:
        cur.execute(f"WITH u AS ({users} RETURNING id)\n{balances}", [USERS])
        cur.execute("SELECT min(id), max(id) FROM auth_user")
        lo, hi = cur.fetchone()
        # The outbox as a logged table, to see what UNLOGGED saves.
        cur.execute("CREATE TABLE bench_outbox (LIKE orders_ordereventrecord INCLUDING ALL)")
        cur.execute("VACUUM ANALYZE")
    connection.close()
    return lo, hi


class Listener:
    """A session LISTENing on order_events that reads every notification, as the hub does."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN order_events")
        self.received = 0
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped:
            for _ in self.conn.notifies(timeout=0.2):
                self.received += 1

    def stop(self) -> None:
        self.stopped = True
        self.thread.join()
        self.conn.close()


def pgbench(url: str, script: str, *, clients: int, lo: int, hi: int, rate: int | None) -> dict:
    parts = urlsplit(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(SECONDS)]
        command += ["-f", file.name, "-D", f"minuid={lo}", "-D", f"maxuid={hi}"]
        if rate is not None:
            command += ["-R", str(rate)]
        command += ["-h", parts.hostname, "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
        command += [parts.path.lstrip("/")]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    return {"tps": tps, "latency_ms": latency}


def main() -> None:
    url = os.environ["DATABASE_URL"]
    lo, hi = prepare_database(url)
    texts = scripts()
    results: dict[tuple[str, int, int | None], list[dict]] = {}
    for rate in (None, RATE):
        for clients in CLIENTS if rate is None else CLIENTS[:1]:
            for run in range(RUNS):
                for name, script in texts.items():
                    listener = Listener(url) if name.endswith("listener") else None
                    try:
                        result = pgbench(url, script, clients=clients, lo=lo, hi=hi, rate=rate)
                    finally:
                        if listener is not None:
                            time.sleep(0.3)
                            listener.stop()
                            result["received"] = listener.received
                    results.setdefault((name, clients, rate), []).append(result)
                    print(f"run {run + 1} {name:22} c={clients:2} rate={rate or '-':>4}: {result}", flush=True)
    print("\nmedians")
    for (name, clients, rate), runs in results.items():
        tps = statistics.median(r["tps"] for r in runs)
        latency = statistics.median(r["latency_ms"] for r in runs)
        print(f"{name:22} clients={clients:2} rate={rate or 'max':>4}  tps={tps:8.1f}  latency={latency:6.3f} ms")


if __name__ == "__main__":
    main()
