"""Facts one process tells the others through PostgreSQL's NOTIFY (docs/DESIGN.md, "Domain events").

``notify(channel, payloads)`` sends them in the caller's transaction with ``pg_notify``:
PostgreSQL delivers a transaction's notifications when it commits, in commit order, to every
session that LISTENs (any process, any machine), and drops them when it rolls back. Outside
a transaction (autocommit) they leave at once.

The payloads are JSON in one format, whoever writes them (Python here, or SQL built by
``decimal_sql`` and ``time_sql`` inside a statement): decimals as strings without exponent or
trailing zeros, times as ``2026-11-27T17:52:05.123456Z`` (UTC, always six decimals).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connections

from core.money import EXACT

# PostgreSQL refuses a payload of 8000 bytes or more (and the whole transaction with it).
MAX_PAYLOAD_BYTES = 7999

_NOTIFY_ONE_SQL = "SELECT pg_notify(%s, %s)"
# Several payloads in one round trip, sent in the order given.
_NOTIFY_MANY_SQL = (
    "SELECT pg_notify(%s, s.payload)"
    " FROM (SELECT p.payload FROM unnest(%s::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY p.n) s"
)


def notify(channel: str, payloads: Sequence[str], *, using: str = "default") -> None:
    """Send ``payloads`` on ``channel`` in one statement, within the caller's transaction.
    Raises ValueError, before sending anything, for a payload PostgreSQL would refuse."""
    if not payloads:
        return
    for payload in payloads:
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"A {channel} payload of {len(payload.encode())} bytes is over PostgreSQL's limit.")
    # Prepared once per connection: the engine sends this with every order it changes.
    with connections[using].prepared_cursor() as cursor:
        if len(payloads) == 1:
            cursor.execute(_NOTIFY_ONE_SQL, [channel, payloads[0]])
        else:
            cursor.execute(_NOTIFY_MANY_SQL, [channel, list(payloads)])


def decimal_text(value: Decimal | None) -> str | None:
    """``0.010000`` -> ``"0.01"``, ``1E+1`` -> ``"10"``: exact at any precision the columns hold
    (normalized in ``EXACT``, not the default 28-digit context, which would round)."""
    if value is None:
        return None
    return format(EXACT.normalize(value), "f")


def time_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def parse_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def decimal_sql(expression: str) -> str:
    """``decimal_text`` in SQL (PostgreSQL 13+): ``trim_scale`` drops the trailing zeros."""
    return f"trim_scale(({expression})::numeric)::text"


def time_sql(expression: str) -> str:
    """``time_text`` in SQL, whatever the session's TimeZone. The colons are quoted literals
    (``":"``), so that no ``:name`` in the text reads as a variable to pgbench or psql."""
    return f"""to_char(({expression})::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.US"Z"')"""
