"""Trade updates at /stream: alpaca-py's TradingStream and alpaca-trade-api's JSON dialect
receive every event of their account, each a valid alpaca-py TradeUpdate, in commit order."""

from __future__ import annotations

import json
from contextlib import contextmanager
from decimal import Decimal

import pytest
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from django.db import connection, transaction
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.services import issue_token
from alpaca_compat import render
from alpaca_compat.streams.hub import APPLICATION_NAME
from balances.lock_objects import usd_balance_for_update
from orders.events import OUTBOX, Event, OrderEvent, announce, order_event
from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest
from tests.alpaca_compat.streams import flows
from tests.alpaca_compat.streams.clients import StalledClient, running
from tests.support.processes import wait_for
from tests.support.threads import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = "authenticate"
LISTEN = {"action": "listen", "data": {"streams": ["trade_updates"]}}


def authenticate(key: str, secret: str) -> str:
    return json.dumps({"action": AUTH, "data": {"key_id": key, "secret_key": secret}})


def recv_json(ws, timeout: float = 5) -> dict:
    return json.loads(ws.recv(timeout=timeout))


@contextmanager
def listening_client(streams, key, secret, path="/stream"):
    with connect(streams.url(path)) as ws:
        ws.send(authenticate(key, secret))
        assert recv_json(ws)["data"]["status"] == "authorized"
        ws.send(json.dumps(LISTEN))
        assert recv_json(ws) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
        yield ws


def test_alpaca_py_receives_every_event_of_its_account_each_a_valid_trade_update(
    streams, user, other_user, make_key, btc_at_50k, server_errors
):
    # given
    key, secret = make_key(user)
    received: list[TradeUpdate] = []

    async def on_update(update: TradeUpdate) -> None:
        received.append(update)

    stream = TradingStream(key, secret, paper=True, url_override=streams.url("/stream"))
    stream.subscribe_trade_updates(on_update)
    with running(stream):
        wait_for(lambda: streams.trade_listeners(user.pk) == 1, timeout=10, what="alpaca-py to listen")
        # when: every flow of the engine, and another account's order
        flows.rest_limit_buy(other_user)
        resting = flows.rest_limit_buy(user, client_order_id="rest-1")
        bought = flows.market_buy(user, client_order_id="buy-1")
        flows.cancel(resting)
        expiring = flows.rest_limit_buy(user, client_order_id="rest-2")
        flows.expire(expiring)
        replaced = flows.rest_limit_buy(user, client_order_id="rest-3")
        successor = flows.replace(replaced, price="41000")
        flows.rejected_buy(user, quantity="1000")
        wait_for(lambda: len(received) >= 10, timeout=10, what="ten trade updates")
    # then: Alpaca's words for each, an order filled on arrival accepted (new) before its fill
    assert [(u.event, u.order.status, str(u.order.id)) for u in received] == [
        ("new", "new", str(resting.order_id)),
        ("new", "new", str(bought.order_id)),
        ("fill", "filled", str(bought.order_id)),
        ("canceled", "canceled", str(resting.order_id)),
        ("new", "new", str(expiring.order_id)),
        ("expired", "expired", str(expiring.order_id)),
        ("new", "new", str(replaced.order_id)),
        ("replaced", "replaced", str(replaced.order_id)),
        ("new", "new", str(successor.order_id)),
        ("rejected", "rejected", str(received[9].order.id)),
    ]
    fill = received[2]
    assert (fill.price, fill.qty, fill.position_qty) == (50000.0, 0.01, 0.01)
    assert (fill.order.filled_qty, fill.order.filled_avg_price) == ("0.01", "50000")
    assert (received[1].order.filled_qty, received[1].order.filled_avg_price) == ("0", None)
    assert received[7].order.replaced_by == successor.order_id
    assert [u.price for u in received if u.event != "fill"] == [None] * 9
    assert server_errors() == []


def test_a_plain_client_at_stream_slash_gets_the_order_as_get_v2_orders_shows_it_in_its_frame_type(
    streams, user, make_key, btc_at_50k, server_errors
):
    # given: alpaca-trade-api's URL (base URL + /stream/), frames sent as binary
    key, secret = make_key(user)
    with connect(streams.url("/stream/")) as ws:
        ws.send(authenticate(key, secret).encode())
        authorized = ws.recv(timeout=5)
        ws.send(json.dumps(LISTEN).encode())
        listening = ws.recv(timeout=5)
        # when
        order = flows.market_buy(user, quantity="0.02")
        accepted = ws.recv(timeout=5)
        update = ws.recv(timeout=5)
    # then
    assert json.loads(accepted)["data"]["event"] == "new"
    assert isinstance(authorized, bytes)
    assert isinstance(update, bytes)
    assert json.loads(authorized) == {"stream": "authorization", "data": {"status": "authorized", "action": AUTH}}
    assert json.loads(listening) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    message = json.loads(update)
    stored = Order.objects.get(pk=order.pk)
    assert message["stream"] == "trade_updates"
    assert message["data"]["order"] == render.order_json(stored)
    assert {k: message["data"][k] for k in ("event", "price", "qty", "position_qty", "timestamp")} == {
        "event": "fill",
        "price": "50000",
        "qty": "0.02",
        "position_qty": "0.02",
        "timestamp": render.iso(stored.filled_at),
    }
    TradeUpdate(**message["data"])  # what alpaca-py does with it
    assert server_errors() == []


def test_the_other_ways_to_authenticate_work_and_an_empty_listen_stops_the_events(
    streams, user, make_key, btc_at_50k, server_errors
):
    # given
    key, secret = make_key(user)
    token = issue_token(user=user).key
    answers = []
    for message in (
        {"action": "auth", "key": key, "secret": secret},
        {"action": AUTH, "data": {"oauth_token": token}},
    ):
        with connect(streams.url("/stream")) as ws:
            ws.send(json.dumps(message))
            answers.append(recv_json(ws)["data"]["status"])
            ws.send(json.dumps({"action": "listen", "data": {"streams": []}}))
            answers.append(recv_json(ws))
            # when: an event after the empty listen
            flows.rest_limit_buy(user)
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)
    # then
    assert answers == ["authorized", {"stream": "listening", "data": {"streams": []}}] * 2
    assert server_errors() == []


def test_bad_credentials_early_listens_and_malformed_messages_get_alpacas_answers(
    streams, user, make_key, settings, server_errors
):
    # given
    key, secret = make_key(user)
    settings.STREAM_MAX_MESSAGE_BYTES = 1000
    with connect(streams.url("/stream")) as ws:
        # when
        ws.send(json.dumps(LISTEN))
        early = recv_json(ws)
        ws.send(authenticate(key, "wrong secret"))
        bad_key = recv_json(ws)
        ws.send(json.dumps({"action": AUTH, "data": {"key_id": key, "secret_key": ["not", "text"]}}))
        bad_type = recv_json(ws)
        ws.send("{not json")
        garbage = recv_json(ws)
        ws.send(json.dumps([1, 2, 3]))
        not_an_object = recv_json(ws)
        ws.send(json.dumps({"action": "dance"}))
        unknown = recv_json(ws)
        ws.send(authenticate(key, secret))
        good = recv_json(ws)
        ws.send(json.dumps({"action": "listen", "data": {"streams": "trade_updates"}}))
        bad_listen = recv_json(ws)
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates", "account_updates"]}}))
        partly = recv_json(ws)
        ws.send("x" * 1001)
        too_big = recv_json(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    # then
    unauthorized = {"status": "unauthorized", "action": AUTH, "message": "access key verification failed"}
    assert early == {"stream": "authorization", "data": {"status": "unauthorized", "action": "listen"}}
    assert bad_key == bad_type == {"stream": "authorization", "data": unauthorized}
    assert garbage == not_an_object == {"action": "error", "data": {"error_message": "invalid syntax"}}
    assert unknown == {"action": "error", "data": {"error_message": "unrecognized action"}}
    assert good["data"]["status"] == "authorized"
    assert bad_listen == {"action": "error", "data": {"error_message": "invalid syntax"}}
    assert partly == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert too_big == {"action": "error", "data": {"error_message": "message too big"}}
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1009, "message too big")
    assert server_errors() == []


def test_a_client_that_does_not_authenticate_in_time_is_closed(streams, settings, server_errors):
    # given
    settings.STREAM_AUTH_TIMEOUT_SECONDS = 0.3
    with connect(streams.url("/stream")) as ws:
        # when
        answer = recv_json(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    # then
    assert answer == {"action": "error", "data": {"error_message": "auth timeout"}}
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "auth timeout")
    assert server_errors() == []


def test_a_key_has_one_connection_per_stream_by_default(streams, user, make_key, server_errors):
    # given
    key, secret = make_key(user)
    with listening_client(streams, key, secret), connect(streams.url("/stream")) as second:
        # when
        second.send(authenticate(key, secret))
        answer = recv_json(second)
        with pytest.raises(ConnectionClosed) as closed:
            second.recv(timeout=5)
    # then
    assert answer == {
        "stream": "authorization",
        "data": {"status": "unauthorized", "action": AUTH, "message": "connection limit exceeded"},
    }
    assert closed.value.rcvd.code == 1008
    assert server_errors() == []


def test_a_rolled_back_transaction_announces_nothing(streams, user, make_key, btc_at_50k, server_errors):
    # given
    key, secret = make_key(user)
    order = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal(1000)),
    )
    order = order.order

    def cancel_then_fail() -> None:
        with transaction.atomic():
            announce(order_event(Event.CANCELLED, order, at=order.updated_at))
            raise RuntimeError("the flow failed")

    with listening_client(streams, key, secret) as ws:
        # when
        with pytest.raises(RuntimeError):
            cancel_then_fail()
        flows.expire(order)
        update = recv_json(ws)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
    # then
    assert update["data"]["event"] == "expired"
    assert server_errors() == []


def test_an_accounts_events_arrive_in_commit_order_from_two_processes_committing_interleaved(
    streams, user, make_key, btc_at_50k, server_errors
):
    # given: two processes (threads with connections of their own) acting on one account,
    # each transaction under the user lock as the engine's are
    key, secret = make_key(user)
    order = flows.rest_limit_buy(user)
    committed: list[str] = []
    snapshot = order_event(Event.NEW, order, at=order.created_at)

    def process(name: str) -> None:
        for i in range(25):
            with transaction.atomic():
                usd_balance_for_update(user_id=user.pk)
                label = f"{name}-{i}"
                announce(OrderEvent(**{**vars(snapshot), "order": {**snapshot.order, "client_order_id": label}}))
                committed.append(label)  # under the lock: the order of the commits

    with listening_client(streams, key, secret) as ws:
        # when
        results = run_concurrently(lambda: process("a"), lambda: process("b"))
        received = [recv_json(ws)["data"]["order"]["client_order_id"] for _ in range(50)]
    # then
    assert results == [None, None]
    assert received == committed
    assert sorted(received) == sorted([f"a-{i}" for i in range(25)] + [f"b-{i}" for i in range(25)])
    assert server_errors() == []


def read_until_closed(ws) -> tuple[list[dict], object]:
    """Every message left, and the close frame the server sent."""
    messages = []
    try:
        while True:
            messages.append(json.loads(ws.recv(timeout=5)))
    except ConnectionClosed as closed:
        return messages, closed.rcvd


def test_a_slow_client_is_dropped_with_407_while_a_fast_one_keeps_receiving(
    streams, user, make_key, btc_at_50k, settings, server_errors
):
    # given: two connections of one account, one of which stops reading
    settings.STREAM_QUEUE_LENGTH = 500
    fast_key, fast_secret = make_key(user, "fast")
    slow_key, slow_secret = make_key(user, "slow")
    order = flows.rest_limit_buy(user, client_order_id="x" * 64)
    event = order_event(Event.NEW, order, at=order.created_at)
    per_round = 300
    with listening_client(streams, fast_key, fast_secret) as fast:
        slow = StalledClient(streams.url("/stream"), streams.port)
        slow.send_text(authenticate(slow_key, slow_secret))
        slow.send_text(json.dumps(LISTEN))
        wait_for(lambda: streams.trade_listeners(user.pk) == 2, timeout=5, what="both to listen")
        # when: bursts of events until the slow client's buffers (the kernel's: megabytes) and
        # its queue are full
        fast_received = []
        while streams.trade_listeners(user.pk) == 2 and len(fast_received) < 40 * per_round:
            with transaction.atomic():
                announce(*[event] * per_round)
            fast_received += [recv_json(fast) for _ in range(per_round)]
        burst = len(fast_received)
        texts, closed = slow.read_until_closed()
        slow_received = [json.loads(text) for text in texts]
    # then
    assert len(fast_received) == burst
    assert {m["data"]["event"] for m in fast_received} == {"new"}
    assert slow_received[:2] == [
        {"stream": "authorization", "data": {"status": "authorized", "action": AUTH}},
        {"stream": "listening", "data": {"streams": ["trade_updates"]}},
    ]
    assert slow_received[-1] == {"action": "error", "data": {"error_message": "slow client"}}
    assert 0 < len(slow_received) - 3 < burst
    assert (closed.code, closed.reason) == (1008, "slow client")
    assert server_errors() == []


def test_when_the_hub_loses_the_database_trade_update_clients_are_closed_and_can_come_back(
    streams, user, make_key, btc_at_50k, server_errors
):
    # given
    key, secret = make_key(user)
    with listening_client(streams, key, secret) as ws:
        # when: the hub's session is cut (a restart, a failover)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                [APPLICATION_NAME],
            )
        answer = recv_json(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    streams.wait_until_live()
    with listening_client(streams, key, secret) as again:
        order = flows.rest_limit_buy(user)
        update = recv_json(again)
    # then
    assert answer == {"action": "error", "data": {"error_message": "internal server error"}}
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "stream restarting")
    assert (update["data"]["event"], update["data"]["order"]["id"]) == ("new", str(order.order_id))
    assert server_errors() == []


def _nested_past_any_parser(user, order) -> str:
    # nested past every JSON parser's depth limit (Python's recursion limit, orjson's 1,024)
    return f'{{"event": "new", "user_id": {user.pk}, "order": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _unrenderable(user, order) -> str:
    # a well-formed event whose order no renderer expects: its side a number (AttributeError,
    # not one of the errors of an unreadable payload), as a bug could write
    payload = json.loads(order_event(Event.NEW, order, at=order.created_at).to_json())
    payload["order"]["order_type"] = 7
    return json.dumps(payload)


@pytest.mark.parametrize(
    ("poison", "logged"),
    [(_nested_past_any_parser, "unreadable order_events payload"), (_unrenderable, "could not deliver")],
)
def test_a_payload_that_breaks_the_hub_stops_no_event_after_it(
    poison, logged, streams, user, make_key, btc_at_50k, caplog
):
    # given: a listening client, and an outbox row of its account that the hub cannot deliver
    key, secret = make_key(user)
    order = flows.rest_limit_buy(user)
    with listening_client(streams, key, secret) as ws:
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {OUTBOX} (payload) VALUES (%s)", [poison(user, order)])

        # when the account's next event commits
        flows.cancel(order)

        # then it arrives, and the bad payload is in the log
        update = recv_json(ws)
    assert (update["data"]["event"], update["data"]["order"]["id"]) == ("canceled", str(order.pk))
    assert any(logged in record.getMessage() for record in caplog.records)
