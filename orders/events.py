"""What happened to an order, announced to every process as a plain domain event
(docs/DESIGN.md, "Domain events").

The engine calls ``announce(OrderEvent(...))`` inside the transaction that made the change:
the event becomes a row of the outbox (``OrderEventRecord``), so it exists exactly when that
transaction commits and never when it rolls back. The one-statement market buy cannot call
Python between its writes and its commit: it puts ``order_event_insert_sql(...)`` into the
statement itself, which builds the same JSON from the inserted row.

Why not NOTIFY: PostgreSQL serialises the commits of notifying transactions, WAL flush
included, on one global lock, so a NOTIFY in every order's transaction caps the whole service
at one commit per disk flush (pgbench, scripts/bench/notify_cost.py: about 200 market buys a
second on the bench machine, against 600 to 900 without it). An outbox row costs an INSERT.

Readers (the streams' hubs) poll the outbox with ``NEW_EVENTS_SQL`` and an ``EventFeed``:
every committed event once, and an account's events in commit order, because every
transaction that writes an account's event holds that account's user lock (docs/DESIGN.md,
"Lock order"), so its row's id is larger than the ids of the events committed before it.

An event is a fact in the engine's words (``fill``, ``canceled``, ...) with the order's row
as it was at that moment; nothing here knows a wire format. The streams (alpaca_compat)
render it for their clients without reading the database again.

Payload (JSON, decimals as strings, times ISO 8601 in UTC)::

    {"event": "fill", "user_id": 7, "at": "2026-11-27T17:52:05.123456Z",
     "order": {"order_id": "...", "user_id": 7, "asset_id": "BTC", "quantity": "0.01", ...},
     "fill_quantity": "0.01", "fill_price": "63389.3", "position_quantity": "0.03",
     "execution_id": "1234"}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import orjson
from django.db import connection, models

from core.notify import decimal_sql, decimal_text, parse_decimal, parse_time, time_sql, time_text
from orders.models import Order, OrderEventRecord

OUTBOX = OrderEventRecord._meta.db_table


class Event:
    """The events, in the engine's words (the streams translate them to their clients' wire)."""

    NEW = "new"  # an order was accepted: it rests (PENDING), or fills or ends right after
    FILL = "fill"  # the whole order filled
    PARTLY_FILLED = "partly_filled"  # a part of it filled and the rest is still open
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REPLACED = "replaced"  # the old order of a replace; its successor announces its own events
    REJECTED = "rejected"  # stored FAILED

    ALL = (NEW, FILL, PARTLY_FILLED, CANCELLED, EXPIRED, REPLACED, REJECTED)
    FILLS = (FILL, PARTLY_FILLED)


# The replay store of a FAILED order's HTTP answer (any JSON, unbounded) is not the order's
# state: it stays out of events, which must fit NOTIFY's 8000 bytes.
_LEFT_OUT = {"failure_details"}
_FIELDS = [field for field in Order._meta.concrete_fields if field.attname not in _LEFT_OUT]


@dataclass(frozen=True)
class OrderEvent:
    event: str
    user_id: int
    order: dict  # order_snapshot(): the row's columns at that moment, by attname, JSON values
    at: datetime
    # Set on fills only.
    fill_quantity: Decimal | None = None
    fill_price: Decimal | None = None
    position_quantity: Decimal | None = None  # the holding's quantity after the fill
    execution_id: str | None = None  # a stable id of the fill: its asset ledger row's id

    def __post_init__(self) -> None:
        if self.event not in Event.ALL:
            raise ValueError(f"Unknown order event {self.event!r}.")

    def to_json(self) -> str:
        # orjson: compact, UTF-8 as it is, keys in this order (the streams find "user_id" near
        # the start). It writes this in a tenth of the standard library's time, on the order
        # path, and reads it in a third, in every hub (docs/DESIGN.md, "Streams").
        return orjson.dumps(
            {
                "event": self.event,
                "user_id": self.user_id,
                "at": time_text(self.at),
                "order": self.order,
                "fill_quantity": decimal_text(self.fill_quantity),
                "fill_price": decimal_text(self.fill_price),
                "position_quantity": decimal_text(self.position_quantity),
                "execution_id": self.execution_id,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> OrderEvent:
        """Raises ValueError (and its subclasses), KeyError or TypeError on a payload that is
        not an order event."""
        data = orjson.loads(text)  # its JSONDecodeError is a ValueError
        return cls(
            event=data["event"],
            user_id=int(data["user_id"]),
            order=dict(data["order"]),
            at=parse_time(data["at"]),
            fill_quantity=parse_decimal(data["fill_quantity"]),
            fill_price=parse_decimal(data["fill_price"]),
            position_quantity=parse_decimal(data["position_quantity"]),
            execution_id=data["execution_id"],
        )


def order_event(event: str, order: Order, *, at: datetime, fill=None) -> OrderEvent:
    """The event of ``order`` as it is now (its instance must hold what was just written).
    ``fill`` is ``(quantity, price, position quantity, execution id)`` for fills."""
    quantity, price, position, execution_id = fill if fill is not None else (None, None, None, None)
    return OrderEvent(
        event=event,
        user_id=order.user_id,
        order=order_snapshot(order),
        at=at,
        fill_quantity=quantity,
        fill_price=price,
        position_quantity=position,
        execution_id=None if execution_id is None else str(execution_id),
    )


_ANNOUNCE_SQL = f"""
    INSERT INTO {OUTBOX} (payload)
    SELECT p.payload FROM unnest(%s::text[]) WITH ORDINALITY AS p(payload, n) ORDER BY p.n
"""


def announce(*events: OrderEvent) -> None:
    """Record the events, in this order, in the caller's transaction (one statement): readers
    see them once it commits, after the events of every transaction of the account that
    committed before it. Outside a transaction they are committed at once."""
    if not events:
        return
    with connection.prepared_cursor() as cursor:  # prepared: the engine sends it with every change
        cursor.execute(_ANNOUNCE_SQL, [[event.to_json() for event in events]])


# --- Reading the outbox ------------------------------------------------------------------

# The oldest transaction still running (every older one has committed or rolled back), and
# the events written since ``since``: one statement, one snapshot.
NEW_EVENTS_SQL = f"""
    SELECT h.horizon::text, e.id, e.txid::text, e.payload
    FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
    LEFT JOIN {OUTBOX} e ON e.txid >= %(since)s::xid8
    ORDER BY e.id
"""
HORIZON_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
# Events written before ``before`` (a horizon some minutes old): read by every reader by now.
FORGET_SQL = f"DELETE FROM {OUTBOX} WHERE txid < %(before)s::xid8"


class EventFeed:
    """What one reader has read of the outbox. Feed it the rows of ``NEW_EVENTS_SQL`` with
    ``since=feed.since``; it answers the payloads not read before, in id order.

    A row can only appear behind the ones read so far if its transaction was still running,
    so the transaction id (txid) of the oldest running transaction (the horizon) is where the
    next read starts; rows at or past it already read are remembered until the horizon passes
    them. A long-running writing transaction holds the horizon back: reads then cover more
    rows, but miss none."""

    def __init__(self, horizon: str | int) -> None:
        self.since = int(horizon)
        self._read: dict[int, int] = {}  # id -> txid of the rows read at or past the horizon

    def new(self, rows) -> list[tuple[int, str]]:
        """The (txid, payload) of each row not read before, in id order."""
        events = []
        horizon = self.since
        for horizon_text, row_id, txid, payload in rows:
            horizon = int(horizon_text)
            if row_id is None or row_id in self._read:
                continue
            self._read[row_id] = int(txid)
            events.append((int(txid), payload))
        self.since = max(self.since, horizon)
        self._read = {row_id: txid for row_id, txid in self._read.items() if txid >= self.since}
        return events


SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text"


@dataclass(frozen=True)
class Snapshot:
    """Which transactions had committed at an instant (PostgreSQL's ``pg_current_snapshot()``,
    ``xmin:xmax:xip,...``): a reader that starts listening takes one, and skips the events it
    then reads whose transaction the snapshot saw committed: they happened before it listened."""

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, running = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(txid) for txid in running.split(",") if txid))

    def saw(self, txid: int) -> bool:
        """The transaction ``txid`` had committed (or rolled back) when the snapshot was taken."""
        return txid < self.xmin or (txid < self.xmax and txid not in self.running)


# --- The order's row, as JSON and back ----------------------------------------------------


def _value(field: models.Field, value):
    if value is None:
        return None
    if isinstance(field, models.DecimalField):
        return decimal_text(value)
    if isinstance(field, models.DateTimeField):
        return time_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def order_snapshot(order: Order) -> dict:
    """The order's columns (by attname) as JSON values, failure_details left out."""
    return {field.attname: _value(field, getattr(order, field.attname)) for field in _FIELDS}


# --- The same events from SQL, for the settlement statements -----------------------------


def _column_sql(field: models.Field, row: str, overrides: dict[str, str]) -> str:
    if field.attname in overrides:
        return overrides[field.attname]
    column = f"{row}.{connection.ops.quote_name(field.column)}"
    if isinstance(field, models.DecimalField):
        return decimal_sql(column)
    if isinstance(field, models.DateTimeField):
        return time_sql(column)
    return column


def order_event_json_sql(
    *,
    event: str,
    row: str,
    at: str,
    fill_quantity: str | None = None,
    fill_price: str | None = None,
    position_quantity: str | None = None,
    execution_id: str | None = None,
    overrides: dict[str, str] | None = None,
    event_sql: str | None = None,
) -> str:
    """The event as a JSON expression, for a statement that writes the order itself: ``row``
    is a relation of that statement holding the order's row with every column (``placed`` of
    ``INSERT ... RETURNING *``), and the other arguments are SQL expressions
    (``placed.filled_at``, ``holding.quantity``, ``asset_row.id``). ``overrides`` gives some
    columns of the order another value (by attname, as SQL already in the JSON's form: the
    order as it was before the statement filled it). ``event_sql``: the event's word as an SQL
    expression, when the statement decides it (``fill`` or ``partly_filled``). Its JSON is ``OrderEvent.to_json()``'s
    for the same values (tests/orders/test_events.py)."""
    if event not in Event.ALL:
        raise ValueError(f"Unknown order event {event!r}.")
    overrides = overrides or {}
    columns = ", ".join(f"{_column_sql(field, row, overrides)} AS {field.attname}" for field in _FIELDS)

    def optional(expression: str | None, as_sql) -> str:
        return "NULL::text" if expression is None else as_sql(expression)

    return (
        "json_build_object("
        f"'event', {event_sql or repr(event)}, "
        f"'user_id', {row}.user_id, "
        f"'at', {time_sql(at)}, "
        f"'order', (SELECT row_to_json(o) FROM (SELECT {columns}) o), "
        f"'fill_quantity', {optional(fill_quantity, decimal_sql)}, "
        f"'fill_price', {optional(fill_price, decimal_sql)}, "
        f"'position_quantity', {optional(position_quantity, decimal_sql)}, "
        f"'execution_id', {optional(execution_id, lambda e: f'({e})::text')})"
    )


def order_event_insert_sql(*, source: str, **event) -> str:
    """``INSERT INTO <the outbox> (payload) SELECT <the event's JSON> <source>``: a step of a
    statement that writes the order, e.g. ``event AS (<this>)`` with ``source="FROM placed,
    holding, asset_row"``. ``event`` as ``order_event_json_sql``'s arguments."""
    return order_events_insert_sql(source=source, events=[event])


def order_events_insert_sql(*, source: str, events: list[dict]) -> str:
    """Several events of one statement's order, in the outbox in this order (their ids, and so
    what readers see first, follow it)."""
    if len(events) == 1:
        return f"INSERT INTO {OUTBOX} (payload) SELECT {order_event_json_sql(**events[0])}::text {source}"
    rows = ", ".join(f"({n}, {order_event_json_sql(**event)}::text)" for n, event in enumerate(events))
    return (
        f"INSERT INTO {OUTBOX} (payload) SELECT e.payload {source} "
        f", LATERAL (VALUES {rows}) AS e(n, payload) ORDER BY e.n"
    )


# The order of a fill on arrival as it was accepted, before the statement filled it: the
# ``new`` event that comes before its ``fill``, as for an order that rested first.
AS_ACCEPTED = {
    "status": f"'{Order.Status.PENDING}'",
    "filled_quantity": "'0'",
    "executed_price": "NULL::text",
    "total_amount": "NULL::text",
    "filled_at": "NULL::text",
}
