"""Portfolio history, activities and bars at the size the issue names: one user with
10,000 fills over 30 days and 30 days of minute prices of the assets they trade.

    DATABASE_URL=postgresql://... python scripts/bench/portfolio_history.py [--runs 50] [--assets 5]
        [--rebuild] [--periods] [--json PATH]

Builds the database ``portfolio_history_bench`` (``BENCH_HISTORY_DB`` to name another) on the
server of DATABASE_URL (the embedded PostgreSQL when unset): drops and creates it, migrates it,
writes the data in bulk SQL, ANALYZEs, and notes what it built in the database's comment. A
later run with the same data set (fills, days, assets, build code) reuses it (``--rebuild`` to
build anyway) and measures at the instant it was built, so the data is as fresh as on the day.
Times the selectors in process and the endpoints through Django's test client (token
authentication, rendering, no network): p50 / p95 / max over ``--runs`` runs after warm-up, and
the SQL queries of each. Prints a table and writes bench-results/portfolio_history.json (or
``--json``). ``--periods`` times only the history of each period at its default timeframe, and
1D in minutes, through the endpoint: what ``make bench``'s portfolio_history phase reports.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import statistics
import sys
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_HISTORY_DB", "portfolio_history_bench")
FILLS = 10_000
DAYS = 30
USERNAME = "history_bench"
TARGET_P50_MS = 100  # the issue's bar for portfolio/history/ at this size


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.path.insert(0, str(Path(__file__).parent))
        from run import database_url, server_params  # the load bench's embedded-server helpers

        return database_url(server_params(), DB_NAME)
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def admin_connect(url: str):
    import psycopg

    parts = urllib.parse.urlsplit(url)
    return psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def recreate_database(url: str) -> None:
    with admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def data_set_key(n_assets: int) -> str:
    """What the data set depends on: its sizes and the code that writes it."""
    text = "\n".join([str((FILLS, DAYS, n_assets)), FILL_SQL, PRICES_SQL, inspect.getsource(build)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def built_at(url: str, key: str) -> datetime | None:
    """When the database was built with this data set, from its comment; None if it was not."""
    with admin_connect(url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [DB_NAME]
        ).fetchone()
    try:
        note = json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        return None
    return datetime.fromisoformat(note["built_at"]) if note.get("key") == key else None


def mark_built(url: str, key: str, at: datetime) -> None:
    note = json.dumps({"key": key, "built_at": at.isoformat()}).replace("'", "''")
    with admin_connect(url) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{DB_NAME}\" IS '{note}'")


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
    user = user_model.objects.create_user(username=USERNAME, password="bench-password-0")
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


def prepare(n_assets: int, *, rebuild: bool = False) -> tuple[object, datetime, str]:
    """Django set up on the bench database, built unless it already holds this data set:
    (the bench user, the instant the data ends, "built in N s" or "reused")."""
    url = bench_database_url()
    key = data_set_key(n_assets)
    end = None if rebuild else built_at(url, key)
    if end is None:
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
    from django.utils import timezone

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    if end is not None:
        return get_user_model().objects.get(username=USERNAME), end, f"reused (built {end:%Y-%m-%d %H:%M} UTC)"
    started = time.perf_counter()
    user, prices = build(get_user_model(), n_assets)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE assets_pricerecord")
        cursor.execute("VACUUM ANALYZE balances_assettransaction")
        cursor.execute("VACUUM ANALYZE balances_cashtransaction")
    end = timezone.now()
    mark_built(url, key, end)
    return user, end, f"built {FILLS} fills and {prices} price records in {time.perf_counter() - started:.1f} s"


def period_cases() -> list[tuple[object, object]]:
    """(period, timeframe) of every period the API offers at its default timeframe, and 1D
    in minutes (its default) named explicitly."""
    from assets.selectors import Timeframe
    from balances.history import Period

    cases = [(period, period.default_timeframe) for period in Period]
    if (Period.DAY_1, Timeframe.MIN_1) not in cases:
        cases.append((Period.DAY_1, Timeframe.MIN_1))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--assets", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="build the data set even if it is there")
    parser.add_argument("--periods", action="store_true", help="only each period at its default timeframe")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results" / "portfolio_history.json")
    args = parser.parse_args()

    user, end, how = prepare(args.assets, rebuild=args.rebuild)
    print(f"database {DB_NAME}: {how}")

    from django.test import Client

    from accounts.services import issue_token
    from assets.selectors import Timeframe
    from balances.history import Period, get_activities, get_portfolio_history

    token = issue_token(user=user).key  # bound to the password (accounts/tokens.py)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")

    def http(path: str, **params):
        def call():
            response = client.get(path, params)
            assert response.status_code == 200, response.content[:300]

        return call

    def history_case(period, timeframe, *, selector: bool) -> tuple[str, object, dict]:
        points = len(get_portfolio_history(user=user, period=period, timeframe=timeframe, end=end).timestamp)
        label = f"portfolio/history {period.value} {timeframe.value} ({points} points)"
        case = {"period": period.value, "timeframe": timeframe.value, "points": points}
        if selector:
            return (
                f"{label} selector",
                lambda: get_portfolio_history(user=user, period=period, timeframe=timeframe, end=end),
                case,
            )
        query = {"period": period.value, "timeframe": timeframe.value, "date_end": end.isoformat()}
        return f"{label} HTTP", http("/api/v1/portfolio/history/", **query), case

    cases = []
    if args.periods:
        cases += [history_case(period, timeframe, selector=False) for period, timeframe in period_cases()]
    else:
        for period, timeframe in [
            (Period.MONTH_1, Timeframe.DAY_1),
            (Period.MONTH_1, Timeframe.HOUR_1),
            (Period.WEEK_1, Timeframe.MIN_15),
            (Period.DAY_1, Timeframe.MIN_1),
            (Period.WEEK_1, Timeframe.MIN_1),
            (Period.ALL, Timeframe.DAY_1),
        ]:
            cases.append(history_case(period, timeframe, selector=True))
            cases.append(history_case(period, timeframe, selector=False))
        deep = get_activities(user=user, page_size=5000)[-1].activity_id
        cases += [
            ("activities first page (50) HTTP", http("/api/v1/activities/"), {}),
            ("activities DEPOSIT only HTTP", http("/api/v1/activities/", activity_type="DEPOSIT"), {}),
            (
                "activities page 100 deep selector",
                lambda: get_activities(user=user, page_token=deep, page_size=50),
                {},
            ),
            (
                "market/bars BH0 1H 30 days HTTP",
                http("/api/v1/market/bars/", asset_id="BH0", timeframe="1H", limit=1000),
                {},
            ),
            ("market/latest 5 assets HTTP", http("/api/v1/market/latest/", asset_id="BH0,BH1,BH2,BH3,BH4"), {}),
        ]
    results = {}
    for name, fn, case in cases:
        results[name] = row = {**case, **measure(fn, args.runs)}
        print(
            f"{name:62} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  "
            f"max {row['max_ms']:7.2f} ms  {row['queries']} queries"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {"fills": FILLS, "days": DAYS, "assets": args.assets, "runs": args.runs, "data": how}
    args.json.write_text(json.dumps({**summary, "end": end.isoformat(), **results}, indent=2))


if __name__ == "__main__":
    main()
