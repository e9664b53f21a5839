"""The price guard (docs/DESIGN.md, "Prices and the price guard"): which of the quotes a
provider answered become prices the service shows and trades on.

A quote outside [MIN_PLAUSIBLE_PRICE, MAX_PLAUSIBLE_PRICE] is refused like a failure
(``plausible``). Every other quote is judged against its asset's row (``judge``):

- the first price of an asset is good;
- a quote observed before the last good one changes nothing: the newer price stays;
- a quote within MAX_PRICE_JUMP of the last good price is good, and cancels a candidate;
- a quote further away starts a *candidate* at its level, or counts for the candidate whose
  level it is within MAX_PRICE_JUMP of. The level becomes good once the provider has kept
  answering it for PRICE_CONFIRM_SECONDS across PRICE_CONFIRM_FETCHES fetches: a fetch counts
  only PRICE_CONFIRM_SECONDS / (PRICE_CONFIRM_FETCHES - 1) or more after the last one counted,
  and a candidate not seen for PRICE_CONFIRM_SECONDS starts over.

While a candidate is pending the asset is *held*: it shows its last good price, stale, and
its orders get 503 ``price_unavailable``, in every process at once. Time, not a count of
requests, confirms: fetches at the same instant (two processes, a burst of reads that missed
the cache) count once, so no amount of reading, anonymous or not, speeds a confirmation. The
clock is ours (when the fetch happened), not the provider's stamp.

The state is one ``LastGoodPrice`` row per asset, in PostgreSQL, so a Redis restart or outage
forgets nothing. Rows are written with compare-and-swap on ``version``, one statement for all
the assets of a fetch, after the provider answered: a row another process changed since it
was read is not written but read and judged again, so two processes never regress a price or
count one instant twice. The statement locks its rows in asset order (two fetches of the same
assets never deadlock) and only while it runs: never across a call to the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from assets.quotes import Quote

logger = logging.getLogger(__name__)

# Compare-and-swap rounds before a fetch's rows are left as the other processes, writing the
# same assets at the same instant, stored them.
WRITE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class GuardedPrice:
    """A ``LastGoodPrice`` row, as read or about to be written (named like the model's columns)."""

    asset_id: str
    price: Decimal
    as_of: datetime
    source: str
    checked_at: datetime
    candidate_price: Decimal | None = None
    candidate_since: datetime | None = None
    candidate_seen_at: datetime | None = None
    candidate_fetches: int = 0
    version: int = 1
    volume: Decimal | None = None  # units traded in the price's minute (docs/DESIGN.md, "Fill model")

    @property
    def held(self) -> bool:
        """A candidate is pending: the price must not be traded on."""
        return self.candidate_price is not None

    def quote(self, *, stale: bool) -> Quote:
        return Quote(
            asset_id=self.asset_id,
            price=self.price,
            as_of=self.as_of,
            source=self.source,
            stale=stale,
            volume=self.volume,
        )


def _good(quote: Quote, *, now: datetime, version: int) -> GuardedPrice:
    return GuardedPrice(
        quote.asset_id, quote.price, quote.as_of, quote.source, checked_at=now, version=version, volume=quote.volume
    )


def _moved(old: Decimal, new: Decimal) -> Decimal:
    return abs(new - old) / old


def _plain(price: Decimal) -> str:
    return format(price.normalize(), "f")  # 20000, not 20000.000000000000 (nor 2E+4) in logs


# --- the rule --------------------------------------------------------------------------


def plausible(fetched: Mapping[str, Quote]) -> dict[str, Quote]:
    """The quotes inside [MIN_PLAUSIBLE_PRICE, MAX_PLAUSIBLE_PRICE]; the others are logged and
    left out, as if the provider had not answered for their assets."""
    kept = {}
    for asset_id, quote in fetched.items():
        if settings.MIN_PLAUSIBLE_PRICE <= quote.price <= settings.MAX_PLAUSIBLE_PRICE:
            kept[asset_id] = quote
        else:
            logger.warning(
                "Refusing the implausible price %s for %s from %s", _plain(quote.price), asset_id, quote.source
            )
    return kept


def judge(last: GuardedPrice | None, quote: Quote, *, now: datetime) -> tuple[GuardedPrice, bool]:
    """The asset's row after ``quote``, fetched at ``now``, and whether the quote became its
    good price. Pure: the caller writes the row (``accept``)."""
    if last is None:
        return _good(quote, now=now, version=1), True
    version = last.version + 1
    if quote.as_of < last.as_of:
        return replace(last, checked_at=now, version=version), False
    asset_id, price, max_jump = quote.asset_id, _plain(quote.price), settings.MAX_PRICE_JUMP
    if _moved(last.price, quote.price) <= max_jump:
        if last.held:
            logger.warning(
                "%s back at %s: the candidate %s is cancelled", asset_id, price, _plain(last.candidate_price)
            )
        return _good(quote, now=now, version=version), True
    confirm = timedelta(seconds=settings.PRICE_CONFIRM_SECONDS)
    refusing = f"Refusing {asset_id} at {price}: more than {max_jump} away from {_plain(last.price)}"
    if not (
        last.held and _moved(last.candidate_price, quote.price) <= max_jump and now - last.candidate_seen_at <= confirm
    ):
        logger.warning("%s; a new candidate", refusing)
        candidate = {"candidate_price": quote.price, "candidate_since": now, "candidate_seen_at": now}
        return replace(last, checked_at=now, candidate_fetches=1, version=version, **candidate), False
    if now - last.candidate_seen_at < confirm / (settings.PRICE_CONFIRM_FETCHES - 1):
        return replace(last, checked_at=now, version=version), False  # too soon after the last counted
    fetches, since = last.candidate_fetches + 1, last.candidate_since.isoformat()
    if fetches >= settings.PRICE_CONFIRM_FETCHES and now - last.candidate_since >= confirm:
        logger.warning(
            "%s moved from %s to %s, confirmed by %d fetches since %s",
            asset_id,
            _plain(last.price),
            price,
            fetches,
            since,
        )
        return _good(quote, now=now, version=version), True
    logger.warning("%s; seen by %d fetches since %s", refusing, fetches, since)
    return replace(last, checked_at=now, candidate_seen_at=now, candidate_fetches=fetches, version=version), False


# --- the rows --------------------------------------------------------------------------

_COLUMNS = [field.name for field in fields(GuardedPrice)]
_TYPES = ["text", "numeric", "timestamptz", "text", "timestamptz", "numeric", "timestamptz", "timestamptz"]
_TYPES += ["int", "bigint", "numeric"]

_READ_SQL = f"SELECT {', '.join(_COLUMNS)} FROM assets_lastgoodprice WHERE asset_id = ANY(%s::text[])"
# An order's read, of one asset: a plain parameter binds faster than a one-element array.
_READ_ONE_SQL = f"SELECT {', '.join(_COLUMNS)} FROM assets_lastgoodprice WHERE asset_id = %s"

_WRITE_SQL = """
    INSERT INTO assets_lastgoodprice AS g ({columns})
    SELECT {new_columns} FROM unnest({arrays}) AS n({columns})
    -- A quote of an id that is not (or no longer) in the inventory is skipped, not an error.
    WHERE EXISTS (SELECT 1 FROM assets_asset a WHERE a.asset_id = n.asset_id)
    -- Rows are taken in asset order: two statements writing the same assets never deadlock.
    ORDER BY n.asset_id
    ON CONFLICT (asset_id) DO UPDATE SET {updates}
    {compare}
    RETURNING g.asset_id
""".format(
    columns=", ".join(_COLUMNS),
    new_columns=", ".join(f"n.{column}" for column in _COLUMNS),
    arrays=", ".join(f"%s::{kind}[]" for kind in _TYPES),
    updates=", ".join(f"{column} = EXCLUDED.{column}" for column in _COLUMNS[1:] if column != "version")
    + ", version = {version}",
    compare="{compare}",
)
# Compare-and-swap: written only over the version the new row was judged against.
_CAS_SQL = _WRITE_SQL.format(version="EXCLUDED.version", compare="WHERE g.version = EXCLUDED.version - 1")
_OVERWRITE_SQL = _WRITE_SQL.format(version="g.version + 1", compare="")


def read_last_good(asset_ids: Collection[str]) -> dict[str, GuardedPrice]:
    """The rows of ``asset_ids`` that have one, by asset id: one query (a primary-key probe per
    asset), on the primary, never a replica: a lagging copy would serve a price older than
    one already served."""
    asset_ids = list(asset_ids)
    with connections[DEFAULT_DB_ALIAS].prepared_cursor() as cursor:
        if len(asset_ids) == 1:
            cursor.execute(_READ_ONE_SQL, asset_ids)
        else:
            cursor.execute(_READ_SQL, [asset_ids])
        return {row[0]: GuardedPrice(*row) for row in cursor.fetchall()}


def _write(rows: Iterable[GuardedPrice], *, compare: bool) -> set[str]:
    rows = list(rows)
    if not rows:
        return set()
    columns = [list(column) for column in zip(*(tuple(getattr(row, c) for c in _COLUMNS) for row in rows), strict=True)]
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_CAS_SQL if compare else _OVERWRITE_SQL, columns)
        return {asset_id for (asset_id,) in cursor.fetchall()}


def accept(
    fetched: Mapping[str, Quote], *, known: Mapping[str, GuardedPrice], now: datetime
) -> tuple[dict[str, GuardedPrice], list[Quote]]:
    """Judge the quotes a provider answered at ``now`` against the rows read before it was
    asked (``known``) and write the new rows. Returns the rows as now stored, by asset id,
    and the quotes that became good prices (for the history). Call it outside any
    transaction that goes on to do slow work: its statement locks the rows it writes."""
    stored: dict[str, GuardedPrice] = {}
    accepted: list[Quote] = []
    todo = dict(fetched)
    last = {asset_id: known[asset_id] for asset_id in todo if asset_id in known}
    for _attempt in range(WRITE_ATTEMPTS):
        judged = {asset_id: judge(last.get(asset_id), quote, now=now) for asset_id, quote in todo.items()}
        for asset_id in _write((row for row, _good in judged.values()), compare=True):
            row, good = judged[asset_id]
            stored[asset_id] = row
            if good:
                accepted.append(todo.pop(asset_id))
            else:
                del todo[asset_id]
        if not todo:
            break
        last = read_last_good(todo)  # another process wrote these since they were read
    else:
        stored.update(last)  # it keeps winning: its rows are as fresh as ours would be
    return stored, accepted


def store(quotes: Iterable[Quote], *, now: datetime) -> None:
    """Make ``quotes`` the last good prices as they are, unjudged, cancelling any candidate
    (seeds, benchmarks and tests set the market with it)."""
    _write({quote.asset_id: _good(quote, now=now, version=1) for quote in quotes}.values(), compare=False)
