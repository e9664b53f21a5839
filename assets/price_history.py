"""The stored price history (docs/DESIGN.md, "Prices and the price guard"): recording
quotes, keeping the table bounded, and the simulated market's past.

Every quote the price guard accepts is handed to ``record_quotes`` here (by
``assets.prices.refresh_quotes``, where fetched quotes are accepted; ``store_quotes`` too). A
row is written at most once per asset per ``PRICE_RECORD_SECONDS`` window, and cheaply: a
cache key per (asset, window) answers "already recorded" for every later quote of that window
without touching the database, and the unique (asset, slot) constraint with ``ON CONFLICT DO
NOTHING`` settles the race when two processes record the same window at once. So an order
placed on a price fetched earlier costs no write here, and a fetch costs at most one INSERT
for all its assets a minute.

``prune_price_history`` keeps the table bounded: rows older than
``PRICE_HISTORY_RETENTION_DAYS`` are thinned to the last price of each asset and UTC day, so
a year of daily portfolio history still has a price for every day.

Reads of the history (latest prices, bars) are selectors: ``assets.selectors``. This module
imports neither ``assets.prices`` nor the guard: they call it, never the other way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from assets.models import Asset
from assets.price_providers import SIMULATED_BUCKET_SECONDS, SimulatedProvider
from assets.quotes import Quote
from core.money import PRICE, ZERO

RECORDED_KEY = "prices:recorded:{asset_id}:{slot}"
# A price the column cannot hold (more integer digits than PRICE has) is not recorded rather than failing
# the request that fetched it.
_PRICE_LIMIT = Decimal(10) ** PRICE.integer_digits
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_INSERT_SQL = """
    INSERT INTO assets_pricerecord (asset_id, price, as_of, source, slot)
    SELECT q.asset_id, q.price, q.as_of, q.source, q.slot
    FROM unnest(%s::text[], %s::numeric[], %s::timestamptz[], %s::text[], %s::timestamptz[])
         AS q(asset_id, price, as_of, source, slot)
    -- Quotes of ids that are not (or no longer) in the inventory are skipped, not an error.
    JOIN assets_asset a ON a.asset_id = q.asset_id
    ON CONFLICT (asset_id, slot) DO NOTHING
"""


def slot_start(as_of: datetime, seconds: int | None = None) -> datetime:
    """The start of the recording window ``as_of`` falls in (windows are aligned to the epoch)."""
    seconds = seconds or settings.PRICE_RECORD_SECONDS
    elapsed = int((as_of - _EPOCH).total_seconds() // seconds) * seconds
    return _EPOCH + timedelta(seconds=elapsed)


def record_quotes(quotes: Iterable[Quote]) -> int:
    """Record the quotes whose (asset, window) has no row yet; returns how many rows were
    written. One cache read, and at most one INSERT, for any number of quotes."""
    seconds = settings.PRICE_RECORD_SECONDS
    rows: dict[str, tuple[str, Decimal, datetime, str, datetime]] = {}
    for quote in quotes:
        if not ZERO < quote.price < _PRICE_LIMIT:
            continue
        slot = slot_start(quote.as_of, seconds)
        key = RECORDED_KEY.format(asset_id=quote.asset_id, slot=int(slot.timestamp()))
        rows[key] = (quote.asset_id, quote.price, quote.as_of, quote.source, slot)
    if not rows:
        return 0
    already = cache.get_many(list(rows))
    todo = {key: row for key, row in rows.items() if key not in already}
    if not todo:
        return 0
    columns = list(zip(*todo.values(), strict=True))
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [list(column) for column in columns])
        written = cursor.rowcount
    # Remembered only after the INSERT: a failed write is retried by the next quote.
    cache.set_many(dict.fromkeys(todo, 1), seconds)
    return written


# --- retention -------------------------------------------------------------------------

# Rows of one asset older than the cutoff that are not the last of their UTC day. The
# index (asset_id, as_of) serves both the scan and the "a later row that day" probe.
_PRUNE_SQL = """
    DELETE FROM assets_pricerecord WHERE id IN (
        SELECT r.id FROM assets_pricerecord r
        WHERE r.asset_id = %(asset_id)s AND r.as_of < %(cutoff)s
          AND EXISTS (
              SELECT 1 FROM assets_pricerecord later
              WHERE later.asset_id = r.asset_id AND later.as_of > r.as_of
                AND later.as_of < date_bin('1 day', r.as_of, TIMESTAMPTZ '2000-01-01 00:00:00+00') + interval '1 day'
          )
        LIMIT %(batch)s
    )
"""


def prune_price_history(
    *,
    retention_days: int | None = None,
    batch_size: int = 10_000,
    now: datetime | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> int:
    """Thin rows older than ``retention_days`` (PRICE_HISTORY_RETENTION_DAYS) to the last
    price of each asset and UTC day. Deletes in batches of ``batch_size``, each its own
    short transaction, so recording never waits long on it; ``progress(asset_id, deleted
    in this batch, deleted in all)`` after each batch. Returns the number of rows deleted."""
    days = settings.PRICE_HISTORY_RETENTION_DAYS if retention_days is None else retention_days
    if days < 1:
        raise ValueError("The retention must be at least one day.")
    now = now or timezone.now()
    cutoff = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    total = 0
    for asset_id in Asset.objects.order_by("asset_id").values_list("asset_id", flat=True):
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_PRUNE_SQL, {"asset_id": asset_id, "cutoff": cutoff, "batch": batch_size})
                deleted = cursor.rowcount
            total += deleted
            if deleted and progress is not None:
                progress(asset_id, deleted, total)
            if deleted < batch_size:
                break
    return total


# --- the simulated market's past ---------------------------------------------------------


def backfill_simulated_prices(
    *, assets: Sequence[Asset], start: datetime, end: datetime, step_seconds: int | None = None
) -> int:
    """Record what the simulated provider quoted (or would have) every ``step_seconds``
    (PRICE_RECORD_SECONDS) from ``start`` to ``end``: its price is a function of time, so
    this is the history a running ``process_orders`` would have left. For ``seed_demo``;
    returns the rows written (windows already recorded are left alone)."""
    step = step_seconds or settings.PRICE_RECORD_SECONDS
    provider = SimulatedProvider()
    quotes = []
    at = slot_start(start, step)
    while at < end:
        bucket = int(at.timestamp()) // SIMULATED_BUCKET_SECONDS
        for asset in assets:
            price = provider.price_at(asset, bucket)
            quotes.append(Quote(asset_id=asset.asset_id, price=price, as_of=at, source=provider.name))
        at += timedelta(seconds=step)
    written = 0
    for chunk_start in range(0, len(quotes), 5_000):
        chunk = quotes[chunk_start : chunk_start + 5_000]
        columns = [
            [q.asset_id for q in chunk],
            [q.price for q in chunk],
            [q.as_of for q in chunk],
            [q.source for q in chunk],
            [slot_start(q.as_of, settings.PRICE_RECORD_SECONDS) for q in chunk],
        ]
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_SQL, columns)
            written += cursor.rowcount
    return written
