"""Order events leave through PostgreSQL's NOTIFY: at commit, in commit order, never on a
rollback, and the one-statement market buy's SQL writes the same JSON as Python does."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from core.notify import MAX_PAYLOAD_BYTES
from orders.events import (
    ORDER_EVENTS,
    Event,
    OrderEvent,
    announce,
    order_event,
    order_event_sql,
    order_from_snapshot,
    order_snapshot,
)
from orders.models import Order
from orders.settlement import order_insert_sql
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 11, 27, 17, 52, 5, 123456, tzinfo=UTC)


@pytest.fixture
def listener():
    """A session of its own LISTENing on order_events, as the streams' hub does."""
    conn = psycopg.connect(database_url(connection.settings_dict), autocommit=True)
    conn.execute(f"LISTEN {ORDER_EVENTS}")
    yield conn
    conn.close()


def received(conn, *, wait: float = 0.5) -> list[dict]:
    return [json.loads(n.payload) for n in conn.notifies(timeout=wait)]


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
        before_commit = received(listener, wait=0.2)
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
        announce_then_fail(Event.CANCELED)
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


def test_events_of_interleaved_transactions_leave_in_commit_order(user, btc, listener):
    # given: two sessions of their own, as two processes would be
    order = a_resting_order(user, btc)
    first = psycopg.connect(database_url(connection.settings_dict))
    second = psycopg.connect(database_url(connection.settings_dict))
    payload = order_event(Event.NEW, order, at=AT).to_json()
    # when: the first announces first but commits last
    first.execute("SELECT pg_notify(%s, %s)", [ORDER_EVENTS, payload.replace('"new"', '"canceled"', 1)])
    second.execute("SELECT pg_notify(%s, %s)", [ORDER_EVENTS, payload.replace('"new"', '"expired"', 1)])
    second.commit()
    first.commit()
    first.close()
    second.close()
    # then
    assert [e["event"] for e in received(listener)] == ["expired", "canceled"]


def test_an_event_round_trips_through_json_with_the_order_as_it_was(user, btc):
    # given
    order = a_resting_order(user, btc, stop_price=Decimal("39000.5"), expires_at=AT + timedelta(days=30))
    event = order_event(Event.FILL, order, at=AT, fill=(Decimal("0.01"), Decimal("50000.25"), Decimal("0.03"), 77))
    # when
    parsed = OrderEvent.from_json(event.to_json())
    rebuilt = order_from_snapshot(parsed.order)
    # then
    assert parsed == event
    assert (parsed.fill_quantity, parsed.fill_price, parsed.position_quantity, parsed.execution_id) == (
        Decimal("0.01"),
        Decimal("50000.25"),
        Decimal("0.03"),
        "77",
    )
    stored = Order.objects.get(pk=order.pk)
    assert {f: getattr(rebuilt, f) for f in parsed.order} == {f: getattr(stored, f) for f in parsed.order}
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
        order_event_sql(event="filled", row="placed", at="placed.filled_at")


# --- the market buy's SQL path ----------------------------------------------------------


def _insert_and_notify_sql(**event) -> str:
    """An INSERT of an order that announces it from its inserted row, as MARKET_BUY_SQL will."""
    insert = order_insert_sql(
        user_id="%(user_id)s",
        asset_id="%(asset_id)s",
        order_id="%(order_id)s",
        order_type="'BUY'",
        quantity="%(quantity)s",
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
    notify = order_event_sql(row="placed", **event)
    return f"WITH placed AS ({insert} RETURNING *) SELECT {notify} FROM placed"


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


def test_the_longest_order_event_fits_postgresqls_payload_limit_on_both_paths(user, btc, listener):
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
        event=Event.PARTIAL_FILL,
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
    python_payload = order_event(Event.PARTIAL_FILL, order, at=order.filled_at, fill=fill).to_json()
    sql_payloads = [n.payload for n in listener.notifies(timeout=0.5)]
    # then
    assert len(sql_payloads) == 1
    assert len(sql_payloads[0].encode()) < MAX_PAYLOAD_BYTES
    assert len(python_payload.encode()) < MAX_PAYLOAD_BYTES
    assert len(python_payload.encode()) < 4000  # half the limit: room for columns yet to come
