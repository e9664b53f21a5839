"""Reads of the asset inventory, of its current prices and of its recorded price history
(market data)."""

from __future__ import annotations

import enum
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from assets.models import Asset, PriceRecord
from assets.quotes import market_bid_ask
from core.replicas import read_connection

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


# --- Market data: reads of the recorded price history (README, "The API in short") ----------------


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

    @property
    def bid(self) -> Decimal:
        return market_bid_ask(self.price)[0]

    @property
    def ask(self) -> Decimal:
        return market_bid_ask(self.price)[1]


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


_LATEST_SQL = """
    SELECT a.asset_id, r.price, r.as_of, r.source
    FROM unnest(%s::text[]) AS a(asset_id)
    CROSS JOIN LATERAL (
        SELECT price, as_of, source FROM assets_pricerecord
        WHERE asset_id = a.asset_id ORDER BY as_of DESC, id DESC LIMIT 1
    ) r
"""


# The newer of each asset's last good price (what orders trade on, written by the price guard
# on every accepted fetch) and its last recorded one (a backfilled history may run later).
_CURRENT_SQL = """
    SELECT a.asset_id, r.price, r.as_of, r.source
    FROM unnest(%s::text[]) AS a(asset_id)
    CROSS JOIN LATERAL (
        (SELECT price, as_of, source FROM assets_lastgoodprice WHERE asset_id = a.asset_id)
        UNION ALL
        (SELECT price, as_of, source FROM assets_pricerecord
         WHERE asset_id = a.asset_id ORDER BY as_of DESC, id DESC LIMIT 1)
        ORDER BY as_of DESC LIMIT 1
    ) r
"""


def get_current_prices(*, asset_ids: Sequence[str]) -> dict[str, LatestPrice]:
    """The current price of each of ``asset_ids`` that has one, as far as the database knows:
    the newer of its last good price and its last recorded price. The same price ``assets/``
    and the order just placed saw (the history keeps only the first price of each window).
    One query, two index probes per asset."""
    if not asset_ids:
        return {}
    with read_connection(PriceRecord).cursor() as cursor:  # a replica may serve it
        cursor.execute(_CURRENT_SQL, [list(asset_ids)])
        return {row[0]: LatestPrice(*row) for row in cursor.fetchall()}


def get_latest_prices(*, asset_ids: Sequence[str]) -> dict[str, LatestPrice]:
    """The last recorded price of each of ``asset_ids`` that has one, in one query (an
    index probe per asset)."""
    if not asset_ids:
        return {}
    with read_connection(PriceRecord).cursor() as cursor:  # a replica may serve it
        cursor.execute(_LATEST_SQL, [list(asset_ids)])
        return {row[0]: LatestPrice(*row) for row in cursor.fetchall()}


# What one page of bars may cost, whatever range it names (docs/DESIGN.md, "Faults"): it covers at
# most ``limit`` buckets of time in all, from the first recorded price at or after where it
# starts, and reads at most BARS_MAX_RECORDS recorded prices. That is more than one bucket
# can hold (a UTC day of one price a second, 86,400: the unique (asset, slot) index allows no
# more), so every page that has a next one holds at least one whole bar.
BARS_MAX_RECORDS = 100_000
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BarsPage:
    bars: list[Bar]
    # ``after`` for the next page: (asset id, a bucket start whose bucket this page finished);
    # None when the range is done.
    next_after: tuple[str, datetime] | None


# One asset's bars from ``lo``: the first recorded price at or after it (one index probe)
# places the window, which ends ``buckets`` buckets later or at ``end``; at most ``records``
# prices of it are read, in time order. Each row carries the first bucket (the window's start).
_ASSET_BARS_SQL = """
    WITH first AS (
        SELECT date_bin(%(step)s, as_of, %(origin)s) AS bucket FROM assets_pricerecord
        WHERE asset_id = %(asset_id)s AND as_of >= %(lo)s AND as_of < %(end)s
        ORDER BY as_of LIMIT 1
    )
    -- Open and close are the price of the least and greatest [time, id, price] (arrays compare
    -- element by element): a bucket's first and last price without a sort per bucket.
    -- Buckets as epoch seconds: loading a timestamptz costs psycopg ~20 times an integer, and a
    -- page may hold 10,000 bars.
    SELECT extract(epoch FROM first.bucket)::bigint,
           extract(epoch FROM date_bin(%(step)s, r.as_of, %(origin)s))::bigint AS bar,
           (min(ARRAY[extract(epoch FROM r.as_of), r.id, r.price]))[3], max(r.price), min(r.price),
           (max(ARRAY[extract(epoch FROM r.as_of), r.id, r.price]))[3], count(*)
    FROM first CROSS JOIN LATERAL (
        -- Both bounds are index conditions: the scan starts at lo and stops at the window's end.
        SELECT as_of, id, price FROM assets_pricerecord
        WHERE asset_id = %(asset_id)s AND as_of >= %(lo)s
          AND as_of < least(%(end)s, first.bucket + %(step)s * %(buckets)s)
        ORDER BY as_of LIMIT %(records)s
    ) r
    GROUP BY first.bucket, 2
    ORDER BY 2
"""


def get_bars(
    *,
    asset_ids: Sequence[str],
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    limit: int = 1000,
    after: tuple[str, datetime] | None = None,
) -> BarsPage:
    """One page of OHLC bars of the recorded prices of ``asset_ids`` in [start, end), by asset
    (in id order) then time: at most ``limit`` bars, and only the work the page needs (see
    BARS_MAX_RECORDS), never the whole range. ``after=(asset_id, bucket start)`` continues
    after that bucket. Buckets with no recorded price have no bar. A query per asset the page
    reaches (an index probe and one range scan each, grouped in PostgreSQL)."""
    step = timeframe.step
    assets = sorted(set(asset_ids))
    if after is not None:
        assets = [asset_id for asset_id in assets if asset_id >= after[0]]
    bars: list[Bar] = []
    buckets_left, records_left = limit, BARS_MAX_RECORDS
    with read_connection(PriceRecord).cursor() as cursor:  # a replica may serve it
        for n, asset_id in enumerate(assets):
            lo = start
            if after is not None and asset_id == after[0]:
                lo = max(start, bucket_start(after[1], timeframe) + step)
            if lo >= end:
                continue
            params = {"asset_id": asset_id, "step": step, "origin": BUCKET_ORIGIN, "lo": lo, "end": end}
            cursor.execute(_ASSET_BARS_SQL, {**params, "buckets": buckets_left, "records": records_left})
            rows = cursor.fetchall()
            if not rows:
                continue  # nothing recorded in the range: this asset cost one index probe
            read = sum(row[-1] for row in rows)
            cut = read >= records_left
            if cut:  # the last bucket may be missing some of its prices: the next page has it
                rows = rows[:-1]
                if not rows and not bars:  # a bucket holds more than a page reads (see above)
                    cursor.execute(_ASSET_BARS_SQL, {**params, "buckets": 1, "records": None})
                    rows = cursor.fetchall()
            room = limit - len(bars)
            bars += [Bar(asset_id, _EPOCH + timedelta(seconds=row[1]), *row[2:]) for row in rows[:room]]
            if cut or len(rows) > room:  # continue after the last whole bar
                return BarsPage(bars, (bars[-1].asset_id, bars[-1].timestamp))
            first_bucket = _EPOCH + timedelta(seconds=rows[0][0])
            window_end = first_bucket + step * buckets_left
            if window_end < end:  # the page's time is spent inside this asset's range
                return BarsPage(bars, (asset_id, window_end - step))
            buckets_left -= (bucket_start(end - _TICK, timeframe) - first_bucket) // step + 1
            records_left -= read
            more_assets = n + 1 < len(assets)
            if more_assets and (buckets_left <= 0 or len(bars) == limit):
                return BarsPage(bars, (asset_id, end))  # this asset is done: the next one's turn
    return BarsPage(bars, None)


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
    with read_connection(PriceRecord).cursor() as cursor:  # a replica may serve it
        cursor.execute(_CLOSING_BARS_SQL.format(assets=assets), params)
        for *row, daily in cursor.fetchall():
            (days if daily else minutes).append(Bar(*row))
    return minutes, days
