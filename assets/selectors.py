"""Reads of the asset inventory and of its recorded price history (market data)."""

from __future__ import annotations

import enum
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connections, router

from assets.models import Asset, PriceRecord

# Every order reads its asset; the inventory changes a few times a day. Each process keeps
# what it read for ASSET_CACHE_SECONDS, so an operator's change (say, suspending trading)
# reaches every server process within that long. Only assets that exist are kept, so
# requests for made-up ids cannot grow the cache.
ASSET_CACHE_SECONDS = 2.0
_recent: dict[str, tuple[float, Asset]] = {}


def get_asset(asset_id: str) -> Asset | None:
    """The asset, as read from the database at most ASSET_CACHE_SECONDS ago; None if unknown."""
    now = time.monotonic()
    hit = _recent.get(asset_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is not None:
        _recent[asset_id] = (now + ASSET_CACHE_SECONDS, asset)
    return asset


def forget_assets() -> None:
    """Drop this process's recent reads (after this process changed the inventory)."""
    _recent.clear()


def get_assets(*, asset_ids: Collection[str] | None = None, is_active: bool | None = None) -> list[Asset]:
    """The inventory in asset-id order, read now (not through the recent reads): all of it,
    or the assets of ``asset_ids`` that exist; ``is_active`` keeps only the active (or the
    inactive) ones. One query."""
    assets = Asset.objects.order_by("asset_id")
    if asset_ids is not None:
        assets = assets.filter(asset_id__in=list(asset_ids))
    if is_active is not None:
        assets = assets.filter(is_active=is_active)
    return list(assets)


def get_asset_ids(*, among: Collection[str] | None = None) -> list[str]:
    """The ids of the inventory in order (only those of ``among`` that exist, when given). One query."""
    ids = Asset.objects.order_by("asset_id")
    if among is not None:
        ids = ids.filter(asset_id__in=list(among))
    return list(ids.values_list("asset_id", flat=True))


# --- Market data: reads of the recorded price history (SPEC section 11) ----------------


class Timeframe(enum.Enum):
    """The bucket sizes of bars and portfolio history, named as Alpaca names them."""

    MIN_1 = "1Min"
    MIN_5 = "5Min"
    MIN_15 = "15Min"
    HOUR_1 = "1H"
    DAY_1 = "1D"

    @property
    def step(self) -> timedelta:
        return _TIMEFRAME_STEPS[self]


_TIMEFRAME_STEPS = {
    Timeframe.MIN_1: timedelta(minutes=1),
    Timeframe.MIN_5: timedelta(minutes=5),
    Timeframe.MIN_15: timedelta(minutes=15),
    Timeframe.HOUR_1: timedelta(hours=1),
    Timeframe.DAY_1: timedelta(days=1),
}
# Buckets are aligned to UTC midnight: a 1D bar is a UTC day, a 1H bar starts on the hour.
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def bucket_start(at: datetime, timeframe: Timeframe) -> datetime:
    """The start of the ``timeframe`` bucket ``at`` falls in (as PostgreSQL's date_bin)."""
    step = timeframe.step
    return BUCKET_ORIGIN + ((at - BUCKET_ORIGIN) // step) * step


@dataclass(frozen=True, slots=True)
class LatestPrice:
    asset_id: str
    price: Decimal
    as_of: datetime
    source: str


@dataclass(frozen=True, slots=True)
class Bar:
    """OHLC of the recorded prices of one bucket; ``count`` is how many were recorded."""

    asset_id: str
    timestamp: datetime  # the bucket's start
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int


def _read_cursor():
    # The history tolerates a little lag: a read replica may serve it (SPEC section 13).
    return connections[router.db_for_read(PriceRecord)].cursor()


_LATEST_SQL = """
    SELECT a.asset_id, r.price, r.as_of, r.source
    FROM unnest(%s::text[]) AS a(asset_id)
    CROSS JOIN LATERAL (
        SELECT price, as_of, source FROM assets_pricerecord
        WHERE asset_id = a.asset_id ORDER BY as_of DESC, id DESC LIMIT 1
    ) r
"""


def get_latest_prices(*, asset_ids: Sequence[str]) -> dict[str, LatestPrice]:
    """The last recorded price of each of ``asset_ids`` that has one, in one query (an
    index probe per asset)."""
    if not asset_ids:
        return {}
    with _read_cursor() as cursor:
        cursor.execute(_LATEST_SQL, [list(asset_ids)])
        return {row[0]: LatestPrice(*row) for row in cursor.fetchall()}


_BARS_SQL = """
    SELECT asset_id, date_bin(%(step)s, as_of, %(origin)s) AS bucket,
           (array_agg(price ORDER BY as_of, id))[1], max(price), min(price),
           (array_agg(price ORDER BY as_of DESC, id DESC))[1], count(*)
    FROM assets_pricerecord
    WHERE asset_id = ANY(%(asset_ids)s) AND as_of >= %(start)s AND as_of < %(end)s {after}
    GROUP BY 1, 2
    ORDER BY 1, 2
    LIMIT %(limit)s
"""
# Keyset: the bars after (asset, bucket) in (asset, time) order. A later bucket of the same
# asset starts one step after that bucket, so the condition is on rows, before grouping.
_BARS_AFTER = "AND (asset_id > %(after_asset)s OR (asset_id = %(after_asset)s AND as_of >= %(after_next)s))"


def get_bars(
    *,
    asset_ids: Sequence[str],
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    limit: int = 1000,
    after: tuple[str, datetime] | None = None,
) -> list[Bar]:
    """OHLC bars of the recorded prices of ``asset_ids`` in [start, end), by asset then
    time, at most ``limit``; ``after=(asset_id, bucket start)`` continues a previous page.
    Buckets with no recorded price have no bar. One query, grouped in PostgreSQL."""
    if not asset_ids:
        return []
    params = {
        "step": timeframe.step,
        "origin": BUCKET_ORIGIN,
        "asset_ids": list(asset_ids),
        "start": start,
        "end": end,
        "limit": limit,
    }
    after_sql = ""
    if after is not None:
        after_sql = _BARS_AFTER
        params.update(after_asset=after[0], after_next=bucket_start(after[1], timeframe) + timeframe.step)
    with _read_cursor() as cursor:
        cursor.execute(_BARS_SQL.format(after=after_sql), params)
        return [Bar(*row) for row in cursor.fetchall()]


# The bars a market data stream publishes when a minute closes (alpaca_compat/streams): the
# minute bars of the last two minutes (the one that just closed, and the one before, which a
# late recording may have changed) and each asset's bar of the day so far. One query however
# many clients are subscribed. ``{assets}`` limits the assets, or not.
_CLOSING_BARS_SQL = """
    SELECT asset_id, date_bin(%(minute)s, as_of, %(origin)s) AS bucket,
           (array_agg(price ORDER BY as_of, id))[1], max(price), min(price),
           (array_agg(price ORDER BY as_of DESC, id DESC))[1], count(*), false AS daily
    FROM assets_pricerecord
    WHERE as_of >= %(minutes_start)s AND as_of < %(end)s {assets}
    GROUP BY 1, 2
    UNION ALL
    SELECT asset_id, %(day_start)s, (array_agg(price ORDER BY as_of, id))[1], max(price), min(price),
           (array_agg(price ORDER BY as_of DESC, id DESC))[1], count(*), true
    FROM assets_pricerecord
    WHERE as_of >= %(day_start)s AND as_of < %(end)s {assets}
    GROUP BY 1
    ORDER BY 8, 1, 2
"""


def get_closing_bars(*, end: datetime, asset_ids: Sequence[str] | None = None) -> tuple[list[Bar], list[Bar]]:
    """For a minute ending at ``end``: the 1Min bars of [end - 2 min, end) and the 1D bars of
    end's UTC day up to ``end`` (the day of end - 1 min, when end is midnight), of
    ``asset_ids`` (every asset when None), by asset then time. One query."""
    minute = Timeframe.MIN_1.step
    params = {
        "minute": minute,
        "origin": BUCKET_ORIGIN,
        "minutes_start": end - 2 * minute,
        "day_start": bucket_start(end - minute, Timeframe.DAY_1),
        "end": end,
    }
    assets = ""
    if asset_ids is not None:
        if not asset_ids:
            return [], []
        assets = "AND asset_id = ANY(%(asset_ids)s)"
        params["asset_ids"] = list(asset_ids)
    minutes: list[Bar] = []
    days: list[Bar] = []
    with _read_cursor() as cursor:
        cursor.execute(_CLOSING_BARS_SQL.format(assets=assets), params)
        for *row, daily in cursor.fetchall():
            (days if daily else minutes).append(Bar(*row))
    return minutes, days
