"""Order events go through the outbox: a reader sees each once its transaction commits, an
account's in commit order, none of a rolled-back transaction, none missed behind a later
one; and the one-statement market buy's SQL writes the same JSON as Python does."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from balances.models import UsdBalance
from orders.events import (
    FORGET_SQL,
    HORIZON_SQL,
    NEW_EVENTS_SQL,
    Event,
    EventFeed,
    OrderEvent,
    announce,
    order_event,
    order_event_insert_sql,
    order_event_json_sql,
    order_snapshot,
)
from orders.models import Order, OrderEventRecord
from orders.settlement import order_insert_sql
from tests.support.processes import own_session

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 11, 27, 17, 52, 5, 123456, tzinfo=UTC)


class Reader:
    """A session of its own reading the outbox, as each streams' hub does."""

    def __init__(self) -> None:
        self.conn = own_session(autocommit=True)
        self.feed = EventFeed(self.conn.execute(HORIZON_SQL).fetchone()[0])

    def read(self) -> list[dict]:
        rows = self.conn.execute(NEW_EVENTS_SQL, {"since": str(self.feed.since)}).fetchall()
        return [json.loads(payload) for _, payload in self.feed.new(rows)]


@pytest.fixture
def listener():
    reader = Reader()
    yield reader
    reader.conn.close()


def received(reader: Reader, *, wait: float = 0) -> list[dict]:
    return reader.read()


def session() -> psycopg.Connection:
    """A session of another process."""
    return own_session()


def a_resting_order(user, btc, **fields) -> Order:
    values = {
        "user": user,
        "asset": btc,
        "order_type": Order.Type.BUY,
        "quantity": Decimal("0.01000000"),
        "order_price": Decimal("40000"),
        "held_amount": Decimal("400.00"),
        "client_order_id": "resting-1",
        "created_at": AT,
    }
    values.update(fields)
    return Order.objects.create(**values)


def test_an_event_leaves_when_its_transaction_commits_and_not_before(user, btc, listener):
    # given
    order = a_resting_order(user, btc)
    # when
    with transaction.atomic():
        announce(order_event(Event.NEW, order, at=AT))
        before_commit = received(listener)
    after_commit = received(listener)
    # then
    assert before_commit == []
    assert [(e["event"], e["order"]["order_id"], e["at"]) for e in after_commit] == [
        ("new", str(order.order_id), "2026-11-27T17:52:05.123456Z")
    ]


def test_a_rolled_back_transaction_announces_nothing(user, btc, listener):
    # given
    order = a_resting_order(user, btc)

    def announce_then_fail(event: str) -> None:
        with transaction.atomic():  # a transaction, or a savepoint inside one
            announce(order_event(event, order, at=AT))
            raise RuntimeError("the flow failed after announcing")

    # when
    with pytest.raises(RuntimeError):
        announce_then_fail(Event.CANCELLED)
    with transaction.atomic():
        with pytest.raises(RuntimeError):
            announce_then_fail(Event.EXPIRED)
        announce(order_event(Event.NEW, order, at=AT))
    # then
    assert [e["event"] for e in received(listener)] == ["new"]


def test_outside_a_transaction_an_event_leaves_at_once(user, btc, listener):
    # given
    order = a_resting_order(user, btc)
    # when
    announce(order_event(Event.NEW, order, at=AT))
    # then
    assert [e["event"] for e in received(listener)] == ["new"]


def test_several_events_of_one_transaction_leave_in_the_order_announced(user, btc, listener):
    # given
    old = a_resting_order(user, btc, client_order_id="old")
    new = a_resting_order(user, btc, client_order_id="new")
    # when
    with transaction.atomic():
        announce(order_event(Event.REPLACED, old, at=AT), order_event(Event.NEW, new, at=AT))
    # then
    assert [(e["event"], e["order"]["client_order_id"]) for e in received(listener)] == [
        ("replaced", "old"),
        ("new", "new"),
    ]


def test_an_accounts_events_are_read_in_the_order_its_transactions_committed(user, btc, listener):
    # given: two sessions (two processes) acting on one account, each under its user lock
    order = a_resting_order(user, btc)
    payload = order_event(Event.NEW, order, at=AT).to_json()
    first, second = session(), session()
    lock = f"SELECT 1 FROM {UsdBalance._meta.db_table} WHERE user_id = %s FOR NO KEY UPDATE"
    first.execute(lock, [user.pk])
    first.execute(f"INSERT INTO {OrderEventRecord._meta.db_table} (payload) VALUES (%s)", [payload])
    # when: the second waits for the lock, then writes and commits after the first
    waiting = threading.Thread(
        target=lambda: (
            second.execute(lock, [user.pk]),
            second.execute(
                f"INSERT INTO {OrderEventRecord._meta.db_table} (payload) VALUES (%s)",
                [payload.replace('"new"', '"cancelled"', 1)],
            ),
            second.commit(),
        )
    )
    waiting.start()
    time.sleep(0.2)  # the second is blocked on the lock
    seen_while_open = received(listener)
    first.commit()
    waiting.join(timeout=10)
    # then
    assert seen_while_open == []
    assert [e["event"] for e in received(listener)] == ["new", "cancelled"]
    first.close()
    second.close()


def test_an_event_committed_behind_a_later_one_is_not_missed(user, other_user, btc, listener):
    # given: another account's transaction writes first (a smaller id) and commits last
    order = a_resting_order(user, btc)
    slow, fast = session(), session()
    table = OrderEventRecord._meta.db_table
    slow.execute(f"INSERT INTO {table} (payload) VALUES (%s)", [order_event(Event.NEW, order, at=AT).to_json()])
    fast.execute(f"INSERT INTO {table} (payload) VALUES (%s)", [order_event(Event.EXPIRED, order, at=AT).to_json()])
    fast.commit()
    # when
    first_read = [e["event"] for e in received(listener)]
    slow.commit()
    second_read = [e["event"] for e in received(listener)]
    third_read = received(listener)
    # then
    assert (first_read, second_read, third_read) == (["expired"], ["new"], [])
    slow.close()
    fast.close()


def test_events_older_than_a_horizon_are_forgotten(user, btc, listener):
    # given
    order = a_resting_order(user, btc)
    announce(order_event(Event.NEW, order, at=AT))
    announce(order_event(Event.CANCELLED, order, at=AT))
    table = OrderEventRecord._meta.db_table
    # the hub forgets below a horizon minutes old: here, the later event's transaction
    (later,) = listener.conn.execute(f"SELECT txid::text FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
    # when
    listener.conn.execute(FORGET_SQL, {"before": later})
    # then
    assert [json.loads(r.payload)["event"] for r in OrderEventRecord.objects.all()] == ["cancelled"]


def test_an_event_round_trips_through_json_with_the_order_as_it_was(user, btc):
    # given
    order = a_resting_order(user, btc, stop_price=Decimal("39000.5"), expires_at=AT + timedelta(days=30))
    event = order_event(Event.FILL, order, at=AT, fill=(Decimal("0.01"), Decimal("50000.25"), Decimal("0.03"), 77))
    # when
    parsed = OrderEvent.from_json(event.to_json())
    # then
    assert parsed == event
    assert (parsed.fill_quantity, parsed.fill_price, parsed.position_quantity, parsed.execution_id) == (
        Decimal("0.01"),
        Decimal("50000.25"),
        Decimal("0.03"),
        "77",
    )
    assert parsed.order == order_snapshot(Order.objects.get(pk=order.pk))
    assert "failure_details" not in parsed.order


def test_a_decimal_keeps_every_digit_its_column_holds(user, btc):
    # given: 38 significant digits, more than Decimal's default context keeps
    order = a_resting_order(user, btc, quantity=Decimal("12345678901234567890.123456789012345678"))
    # when
    snapshot = order_snapshot(order)
    # then
    assert snapshot["quantity"] == "12345678901234567890.123456789012345678"


def test_an_unknown_event_is_refused():
    with pytest.raises(ValueError, match="Unknown order event 'filled'"):
        OrderEvent(event="filled", user_id=1, order={}, at=AT)
    with pytest.raises(ValueError, match="Unknown order event 'filled'"):
        order_event_json_sql(event="filled", row="placed", at="placed.filled_at")


# --- the market buy's SQL path ----------------------------------------------------------


def _insert_and_notify_sql(**event) -> str:
    """An INSERT of an order that records its event from the inserted row, as MARKET_BUY_SQL will."""
    insert = order_insert_sql(
        user_id="%(user_id)s",
        asset_id="%(asset_id)s",
        order_id="%(order_id)s",
        order_type="'BUY'",
        quantity="%(quantity)s",
        filled_quantity="%(quantity)s",
        order_price="%(order_price)s",
        total_amount="%(cost)s",
        executed_price="%(price)s",
        status="'COMPLETED'",
        client_order_id="%(client_order_id)s",
        failure_reason="%(failure_reason)s",
        failure_code="%(failure_code)s",
        failure_details='\'{"available": "0"}\'',
        expires_at="%(expires_at)s",
        notional="%(notional)s",
        time_in_force="'gtc'",
        created_at="%(at)s",
        updated_at="%(at)s",
        filled_at="%(at)s",
        placed_via="'alpaca'",
        stop_price="%(stop_price)s",
        triggered_at="%(at)s",
    )
    return (
        f"WITH placed AS ({insert} RETURNING *) {order_event_insert_sql(row='placed', source='FROM placed', **event)}"
    )


def _market_buy_values(user, **overrides) -> dict:
    values = {
        "user_id": user.pk,
        "asset_id": "BTC",
        "order_id": uuid.uuid4(),
        "quantity": Decimal("0.01"),
        "order_price": None,
        "cost": Decimal("500.01"),
        "price": Decimal("50000.5"),
        "client_order_id": "buy-1",
        "failure_reason": "",
        "failure_code": "",
        "expires_at": None,
        "notional": None,
        "stop_price": None,
        "at": datetime(2026, 11, 27, 17, 52, 5, tzinfo=UTC),  # no microseconds: still six decimals
    }
    values.update(overrides)
    return values


def test_the_market_buy_sql_announces_the_same_json_as_python(user, btc, listener):
    # given
    values = _market_buy_values(user)
    sql = _insert_and_notify_sql(
        event=Event.FILL,
        at="placed.filled_at",
        fill_quantity="placed.quantity",
        fill_price="placed.executed_price",
        position_quantity="0.03::numeric(38, 18)",
        execution_id="4242::bigint",
    )
    # when
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/New_York'")  # the JSON is UTC whatever the session's zone
        cursor.execute(sql, values)
        cursor.execute("SET TIME ZONE 'UTC'")
    from_sql = received(listener)
    order = Order.objects.get(pk=values["order_id"])
    fill = (order.quantity, order.executed_price, Decimal("0.03"), 4242)
    from_python = json.loads(order_event(Event.FILL, order, at=order.filled_at, fill=fill).to_json())
    # then
    assert from_sql == [from_python]
    assert from_python["order"]["created_at"] == "2026-11-27T17:52:05.000000Z"
    assert (from_python["fill_quantity"], from_python["execution_id"]) == ("0.01", "4242")


def test_the_longest_order_event_stays_small_on_both_paths(user, btc, listener):
    # given: every column at its longest, text that JSON escapes at 6 bytes a character
    longest_text = "\u0001" * 255
    values = _market_buy_values(
        user,
        quantity=Decimal("99999999999999999999.999999999999999999"),
        order_price=Decimal("999999999999999999.999999999999"),
        cost=Decimal("999999999999999999.99"),
        price=Decimal("999999999999999999.999999999999"),
        stop_price=Decimal("999999999999999999.999999999999"),
        notional=Decimal("999999999999999999.99"),
        client_order_id="\u0001" * 64,
        failure_reason=longest_text,
        failure_code="\u0001" * 32,
        expires_at=AT,
    )
    sql = _insert_and_notify_sql(
        event=Event.PARTLY_FILLED,
        at="placed.filled_at",
        fill_quantity="placed.quantity",
        fill_price="placed.executed_price",
        position_quantity="placed.quantity",
        execution_id="9223372036854775807::bigint",
    )
    # when
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
    order = Order.objects.get(pk=values["order_id"])
    order.api_key_id = "k" * 20
    fill = (order.quantity, order.executed_price, order.quantity, 9223372036854775807)
    python_payload = order_event(Event.PARTLY_FILLED, order, at=order.filled_at, fill=fill).to_json()
    sql_payloads = [r.payload for r in OrderEventRecord.objects.all()]
    # then: under half of what NOTIFY would carry (8000 bytes), were events ever sent that way
    assert len(sql_payloads) == 1
    assert len(sql_payloads[0].encode()) < 4000
    assert len(python_payload.encode()) < 4000
