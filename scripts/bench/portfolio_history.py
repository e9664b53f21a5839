"""Portfolio history, activities and bars at the size SPEC section 11 names: one user with
10,000 fills over 30 days and 30 days of minute prices of the assets they trade.

    DATABASE_URL=postgresql://... python scripts/bench/portfolio_history.py [--runs 50] [--assets 5]

Creates (drops first) the database ``portfolio_history_bench`` on the server of DATABASE_URL
(the embedded PostgreSQL when unset), migrates it, writes the data in bulk SQL, ANALYZEs, and
times the selectors in process and the endpoints through Django's test client (token
authentication, rendering, no network): p50 / p95 / max over ``--runs`` runs after warm-up, and
the SQL queries of each. Prints a table and writes bench-results/portfolio_history.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = "portfolio_history_bench"
FILLS = 10_000
DAYS = 30


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.path.insert(0, str(Path(__file__).parent))
        from run import database_url, server_params  # the load bench's embedded-server helpers

        return database_url(server_params(), DB_NAME)
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urllib.parse.urlsplit(url)
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


FILL_SQL = """
WITH params AS (SELECT %(start)s::timestamptz AS start, %(user_id)s AS user_id, %(assets)s AS n),
fills AS (
    SELECT g, p.user_id,
           'BH' || (g %% p.n) AS asset_id,
           p.start + make_interval(secs => g * %(spacing)s) AS ts,
           -- each asset alternates buy, sell: its quantity never goes below zero
           CASE WHEN (g / p.n) %% 2 = 0 THEN 'BUY' ELSE 'SELL' END AS kind
    FROM params p, generate_series(1, %(fills)s) AS g
),
priced AS (
    SELECT f.*, r.price, ceil(0.01 * r.price * 100) / 100 AS cost
    FROM fills f
    CROSS JOIN LATERAL (
        SELECT price FROM assets_pricerecord WHERE asset_id = f.asset_id AND as_of <= f.ts
        ORDER BY as_of DESC LIMIT 1
    ) r
),
assets_rows AS (
    INSERT INTO balances_assettransaction
        (user_id, asset_id, transaction_type, quantity, price_per_unit, total_amount, realized_pnl,
         order_id, status, price_source, note, client_reference, actor_id, created_at)
    SELECT user_id, asset_id, kind, 0.01, price, cost, CASE WHEN kind = 'SELL' THEN 0 END,
           NULL, 'COMPLETED', 'bench', '', NULL, NULL, ts
    FROM priced
)
INSERT INTO balances_cashtransaction
    (user_id, transaction_type, amount, balance_after, order_id, client_reference, note, actor_id, created_at)
SELECT user_id, kind, signed, %(opening)s + sum(signed) OVER (ORDER BY ts, g), NULL, NULL, '', NULL, ts
FROM (SELECT *, CASE WHEN kind = 'BUY' THEN -cost ELSE cost END AS signed FROM priced) s
"""

PRICES_SQL = """
INSERT INTO assets_pricerecord (asset_id, price, as_of, source, slot)
SELECT a.asset_id, round(a.reference_price * (1 + 0.05 * sin(extract(epoch FROM t) / 3600.0 + a.k))::numeric, 12),
       t, 'bench', t
FROM (SELECT asset_id, reference_price, row_number() OVER (ORDER BY asset_id) AS k
      FROM assets_asset WHERE asset_id LIKE 'BH%%') a,
     generate_series(%(start)s::timestamptz, %(end)s::timestamptz, interval '1 minute') AS t
"""


def build(user_model, n_assets: int):
    from datetime import timedelta
    from decimal import Decimal

    from django.db import connection
    from django.utils import timezone

    from assets.models import Asset
    from balances.services import deposit

    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(days=DAYS)
    for k in range(n_assets):
        Asset.objects.create(asset_id=f"BH{k}", name=f"Bench {k}", reference_price=Decimal(100 * (k + 1)))
    user = user_model.objects.create_user(username="history_bench", password="bench-password-0")
    deposit(user=user, amount=Decimal("990000.00"))  # 1,000,000.00 with the initial 10,000.00
    with connection.cursor() as cursor:
        cursor.execute(PRICES_SQL, {"start": start - timedelta(hours=1), "end": now})
        prices = cursor.rowcount
        cursor.execute(
            FILL_SQL,
            {
                "start": start,
                "user_id": user.pk,
                "assets": n_assets,
                "fills": FILLS,
                "spacing": DAYS * 86400 / (FILLS + 1),
                "opening": Decimal("1000000.00"),
            },
        )
    with connection.cursor() as cursor:
        # Bring the holdings in line with the ledger, so the present matches the past.
        cursor.execute(
            """
            INSERT INTO balances_assetbalance (user_id, asset_id, quantity, held_quantity, average_purchase_price,
                total_bought, total_sold, last_transaction_at, created_at, updated_at)
            SELECT user_id, asset_id, sum(CASE WHEN transaction_type = 'SELL' THEN -quantity ELSE quantity END), 0,
                   0, 0, 0, max(created_at), now(), now()
            FROM balances_assettransaction WHERE user_id = %s GROUP BY 1, 2
            """,
            [user.pk],
        )
    return user, prices


def measure(fn, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as captured:
        fn()
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "max_ms": round(times[-1], 2),
        "queries": len(captured.captured_queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--assets", type=int, default=5)
    args = parser.parse_args()

    url = bench_database_url()
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")
    os.environ.setdefault("THROTTLE_USER_RATE", "100000000/s")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.services import issue_token

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    user, prices = build(get_user_model(), args.assets)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE assets_pricerecord")
        cursor.execute("VACUUM ANALYZE balances_assettransaction")
        cursor.execute("VACUUM ANALYZE balances_cashtransaction")
    print(f"built {FILLS} fills and {prices} price records in {time.perf_counter() - started:.1f} s")

    from assets.selectors import Timeframe
    from balances.history import Period, get_activities, get_portfolio_history

    token = issue_token(user=user).key  # bound to the password (accounts/tokens.py)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")

    def http(path: str, **params):
        def call():
            response = client.get(path, params)
            assert response.status_code == 200, response.content[:300]

        return call

    cases = []
    for period, timeframe in [
        (Period.MONTH_1, Timeframe.DAY_1),
        (Period.MONTH_1, Timeframe.HOUR_1),
        (Period.WEEK_1, Timeframe.MIN_15),
        (Period.DAY_1, Timeframe.MIN_1),
        (Period.WEEK_1, Timeframe.MIN_1),
        (Period.ALL, Timeframe.DAY_1),
    ]:
        history = get_portfolio_history(user=user, period=period, timeframe=timeframe)
        label = f"portfolio/history {period.value} {timeframe.value} ({len(history.timestamp)} points)"
        cases.append(
            (
                f"{label} selector",
                lambda p=period, t=timeframe: get_portfolio_history(user=user, period=p, timeframe=t),
            )
        )
        cases.append(
            (f"{label} HTTP", http("/api/v1/portfolio/history/", period=period.value, timeframe=timeframe.value))
        )
    cases += [
        ("activities first page (50) HTTP", http("/api/v1/activities/")),
        ("activities DEPOSIT only HTTP", http("/api/v1/activities/", activity_type="DEPOSIT")),
        ("activities page 100 deep selector", None),
        ("market/bars BH0 1H 30 days HTTP", http("/api/v1/market/bars/", asset_id="BH0", timeframe="1H", limit=1000)),
        ("market/latest 5 assets HTTP", http("/api/v1/market/latest/", asset_id="BH0,BH1,BH2,BH3,BH4")),
    ]
    deep = get_activities(user=user, page_size=5000)[-1].activity_id
    results = {}
    for name, fn in cases:
        if fn is None:
            fn = lambda: get_activities(user=user, page_token=deep, page_size=50)  # noqa: E731
        results[name] = row = measure(fn, args.runs)
        print(
            f"{name:62} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  "
            f"max {row['max_ms']:7.2f} ms  {row['queries']} queries"
        )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "portfolio_history.json").write_text(
        json.dumps({"fills": FILLS, "days": DAYS, "assets": args.assets, "price_records": prices, **results}, indent=2)
    )


if __name__ == "__main__":
    main()
