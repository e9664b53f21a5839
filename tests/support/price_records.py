"""Recorded prices for the market-data tests, which read the same history through /api/v1
and through Alpaca's /v1beta3: BTC minute by minute from ``T0`` (the ``btc_minutes``
fixture of tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from assets.models import Asset, PriceRecord

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def record(asset: Asset, price: str, at: datetime) -> None:
    PriceRecord.objects.create(asset=asset, price=Decimal(price), as_of=at, source="test", slot=at)


def record_btc_minutes(btc: Asset) -> None:
    """BTC at 12:00 100, 12:01 103, 12:02 99, 12:03 101 | 12:05 110, 12:09 108 | 12:10 107.5."""
    for minute, price in [(0, "100"), (1, "103"), (2, "99"), (3, "101"), (5, "110"), (9, "108"), (10, "107.5")]:
        record(btc, price, T0 + timedelta(minutes=minute))


# One price per asset at every step of [start, end), in one statement: as `prune_price_history`
# leaves the history older than its retention (a price a day), or as recorded minute by minute.
_SERIES_SQL = """
    INSERT INTO assets_pricerecord (asset_id, price, as_of, source, slot)
    SELECT a.asset_id, round((100 + a.k + 10 * sin(extract(epoch FROM t) / 86400.0 + a.k))::numeric, 6),
           t, 'test', t
    FROM unnest(%(asset_ids)s::text[]) WITH ORDINALITY AS a(asset_id, k),
         generate_series(%(start)s::timestamptz, %(end)s::timestamptz - %(step)s::interval, %(step)s::interval) AS t
"""


def record_series(asset_ids: list[str], *, start: datetime, end: datetime, step: timedelta) -> int:
    """Record a price for each of ``asset_ids`` at ``start``, ``start + step``, ... before
    ``end`` (bulk SQL: a century of days for 22 assets takes seconds); returns the rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_SERIES_SQL, {"asset_ids": asset_ids, "start": start, "end": end, "step": step})
        cursor.execute("ANALYZE assets_pricerecord")
        return cursor.rowcount
