"""Crypto market data at /v1beta3/crypto/us (alpaca-py, msgpack) and /v1beta2/crypto
(alpaca-trade-api and CCXT, JSON): quotes on every accepted price, this service's own fills
as anonymous trades, minute, updated and daily bars, and Alpaca's error codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgpack
import pytest
from alpaca.data.live import CryptoDataStream
from alpaca.data.models import Bar, Quote, Trade
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from alpaca_compat.streams import wire
from assets.price_events import PriceEvent, announce_prices
from assets.prices import Quote as PriceQuote
from balances.models import AssetTransaction
from tests.alpaca_compat.streams import flows
from tests.alpaca_compat.streams.clients import running
from tests.support.price_records import record
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE_END = datetime(2026, 3, 2, 12, 5, tzinfo=UTC)  # 12:04 closes at 12:05
AS_OF = datetime(2026, 3, 2, 12, 4, 30, tzinfo=UTC)


def frames(ws, timeout: float = 5) -> list[dict]:
    return json.loads(ws.recv(timeout=timeout))


def auth(key: str, secret: str) -> str:
    return json.dumps({"action": "auth", "key": key, "secret": secret})


def announce_price(price: str) -> None:
    announce_prices([PriceQuote(asset_id="BTC", price=Decimal(price), as_of=AS_OF, source="simulated")])


def record_minute(btc) -> None:
    """BTC in the minute 12:04: 100 then 103, and earlier that day 90."""
    record(btc, "90", datetime(2026, 3, 2, 0, 1, tzinfo=UTC))
    record(btc, "100", datetime(2026, 3, 2, 12, 4, 10, tzinfo=UTC))
    record(btc, "103", datetime(2026, 3, 2, 12, 4, 50, tzinfo=UTC))


def test_alpaca_py_crypto_data_stream_receives_quotes_trades_and_bars_in_msgpack(
    streams, user, make_key, btc_at_50k, server_errors
):
    # given
    key, secret = make_key(user)
    record_minute(btc_at_50k)
    streams.settle()  # the fixture's price of 50000 is no quote of this test
    received: list = []

    async def collect(item) -> None:
        received.append(item)

    stream = CryptoDataStream(key, secret, url_override=streams.url("/v1beta3/crypto/us"))
    stream.subscribe_quotes(collect, "BTC/USD")
    stream.subscribe_trades(collect, "BTC/USD")
    stream.subscribe_bars(collect, "BTC/USD")
    with running(stream):
        wait_for(lambda: streams.subscribers("bars") == 1, timeout=10, what="alpaca-py to subscribe")
        # when
        announce_price("50000.5")
        wait_for(lambda: len(received) == 1, timeout=5, what="the quote")
        order = flows.market_buy(user, quantity="0.01")
        wait_for(lambda: len(received) == 2, timeout=5, what="the trade")
        streams.close_minute(MINUTE_END)
        wait_for(lambda: len(received) == 3, timeout=5, what="the bar")
    # then
    quote, trade, bar = received
    assert isinstance(quote, Quote)
    assert (quote.symbol, quote.bid_price, quote.ask_price, quote.bid_size, quote.timestamp) == (
        "BTC/USD",
        50000.5,
        50000.5,
        0,
        AS_OF,
    )
    assert isinstance(trade, Trade)
    execution = AssetTransaction.objects.get(order=order)
    assert (trade.symbol, trade.price, trade.size, trade.id, trade.timestamp) == (
        "BTC/USD",
        50000.0,
        0.01,
        execution.pk,
        order.filled_at,
    )
    assert isinstance(bar, Bar)
    assert (bar.symbol, bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count) == (
        "BTC/USD",
        datetime(2026, 3, 2, 12, 4, tzinfo=UTC),
        100.0,
        103.0,
        100.0,
        103.0,
        0,
        2,
    )
    assert server_errors() == []


def test_a_json_client_speaking_ccxts_dialect_gets_alpacas_frames(streams, user, make_key, btc_at_50k, server_errors):
    # given: /v1beta2/crypto without a msgpack Content-Type, as CCXT's alpaca driver connects
    key, secret = make_key(user)
    record_minute(btc_at_50k)
    streams.settle()  # the fixture's price of 50000 is no quote of this test
    with connect(streams.url("/v1beta2/crypto")) as ws:
        connected = frames(ws)
        ws.send(auth(key, secret))
        authenticated = frames(ws)
        ws.send(json.dumps({"action": "subscribe", "quotes": ["BTC/USD"], "trades": ["*"], "dailyBars": ["BTCUSD"]}))
        subscription = frames(ws)
        # when
        announce_price("50000.5")
        quote = frames(ws)
        order = flows.market_buy(user, quantity="0.01")
        trade = frames(ws)
        streams.close_minute(MINUTE_END)
        daily = frames(ws)
        ws.send(json.dumps({"action": "unsubscribe", "quotes": ["BTC/USD"], "trades": ["*"]}))
        unsubscribed = frames(ws)
        announce_price("50001")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
    # then
    assert connected == [{"T": "success", "msg": "connected"}]
    assert authenticated == [{"T": "success", "msg": "authenticated"}]
    assert subscription == [
        {
            "T": "subscription",
            "trades": ["*"],
            "quotes": ["BTC/USD"],
            "orderbooks": [],
            "bars": [],
            "updatedBars": [],
            "dailyBars": ["BTC/USD"],
        }
    ]
    assert quote == [
        {"T": "q", "S": "BTC/USD", "bp": 50000.5, "bs": 0, "ap": 50000.5, "as": 0, "t": "2026-03-02T12:04:30Z"}
    ]
    execution = AssetTransaction.objects.get(order=order)
    filled_at = order.filled_at.isoformat().replace("+00:00", "Z")
    assert trade == [{"T": "t", "S": "BTC/USD", "p": 50000.0, "s": 0.01, "t": filled_at, "i": execution.pk, "tks": "B"}]
    assert daily == [
        {
            "T": "d",
            "S": "BTC/USD",
            "o": 90.0,
            "h": 103.0,
            "l": 90.0,
            "c": 103.0,
            "v": 0,
            "t": "2026-03-02T00:00:00Z",
            "n": 3,
            "vw": pytest.approx(98.6666666667),
        }
    ]
    assert unsubscribed[0]["quotes"] == unsubscribed[0]["trades"] == []
    assert server_errors() == []


def test_a_minute_bar_changed_after_it_was_sent_comes_again_as_an_updated_bar(
    streams, user, make_key, btc, server_errors
):
    # given
    key, secret = make_key(user)
    record_minute(btc)
    with connect(streams.url("/v1beta3/crypto/us")) as ws:
        frames(ws)
        ws.send(auth(key, secret))
        frames(ws)
        ws.send(json.dumps({"action": "subscribe", "bars": ["*"], "updatedBars": ["BTC/USD"]}))
        frames(ws)
        streams.close_minute(MINUTE_END)
        first = frames(ws)
        # when: a price of 12:04 recorded late, and one of 12:05
        record(btc, "95", datetime(2026, 3, 2, 12, 4, 59, tzinfo=UTC))
        record(btc, "104", datetime(2026, 3, 2, 12, 5, 20, tzinfo=UTC))
        streams.close_minute(MINUTE_END + timedelta(minutes=1))
        second = frames(ws)
        streams.close_minute(MINUTE_END + timedelta(minutes=2))  # nothing new: nothing sent
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
    # then
    assert [(m["T"], m["t"], m["o"], m["h"], m["l"], m["c"], m["n"]) for m in first] == [
        ("b", "2026-03-02T12:04:00Z", 100.0, 103.0, 100.0, 103.0, 2)
    ]
    assert sorted((m["T"], m["t"], m["o"], m["h"], m["l"], m["c"], m["n"]) for m in second) == [
        ("b", "2026-03-02T12:05:00Z", 104.0, 104.0, 104.0, 104.0, 1),
        ("u", "2026-03-02T12:04:00Z", 100.0, 103.0, 95.0, 95.0, 3),
    ]
    assert server_errors() == []


def test_bad_keys_early_subscriptions_unknown_channels_and_garbage_get_alpacas_codes(
    streams, user, make_key, settings, server_errors
):
    # given
    key, secret = make_key(user)
    settings.STREAM_SYMBOLS_PER_CONNECTION = 2
    with connect(streams.url("/v1beta3/crypto/us"), additional_headers={"Content-Type": "application/msgpack"}) as ws:
        answers = [msgpack.unpackb(ws.recv(timeout=5))]

        def ask(message) -> None:
            ws.send(message if isinstance(message, bytes) else msgpack.packb(message))
            answers.append(msgpack.unpackb(ws.recv(timeout=5)))

        # when
        ask({"action": "subscribe", "quotes": ["BTC/USD"]})
        ask({"action": "auth", "key": key, "secret": "wrong"})
        ask({"action": "auth", "key": 12, "secret": None})
        ask(b"\xc1 not msgpack")
        ask({"action": "dance"})
        ask(["auth"])
        ask({"action": "auth", "key": key, "secret": secret})
        ask({"action": "auth", "key": key, "secret": secret})
        ask({"action": "subscribe", "orderbooks": ["BTC/USD"]})
        ask({"action": "subscribe", "statuses": ["*"]})
        ask({"action": "subscribe", "candles": ["BTC/USD"]})
        ask({"action": "subscribe", "quotes": "BTC/USD"})
        ask({"action": "subscribe", "quotes": ["BTC/USD", "ETH/USD", "SOL/USD"]})
        ask({"action": "subscribe", "quotes": ["BTC/USD"], "trades": ["BTC/USD", "ETH/USD"]})
    # then
    assert [[(m["T"], m.get("code"), m.get("msg")) for m in answer] for answer in answers] == [
        [("success", None, "connected")],
        [("error", 401, "not authenticated")],
        [("error", 402, "auth failed")],
        [("error", 402, "auth failed")],
        [("error", 400, "invalid syntax")],
        [("error", 400, "invalid syntax")],
        [("error", 400, "invalid syntax")],
        [("success", None, "authenticated")],
        [("error", 403, "already authenticated")],
        [("error", 409, "insufficient subscription")],
        [("error", 410, "invalid subscribe action for this feed")],
        [("error", 400, "invalid syntax")],
        [("error", 400, "invalid syntax")],
        [("error", 405, "symbol limit exceeded")],
        [("subscription", None, None)],
    ]
    assert answers[-1][0]["trades"] == ["BTC/USD", "ETH/USD"]
    assert server_errors() == []


def test_an_oversized_message_a_second_connection_and_a_late_auth_are_refused_and_closed(
    streams, user, make_key, settings, server_errors
):
    # given
    key, secret = make_key(user)
    settings.STREAM_MAX_MESSAGE_BYTES = 1000
    results = []
    with connect(streams.url("/v1beta2/crypto")) as ws:
        frames(ws)
        # when: a message above the limit (in several frames, as alpaca-py sends large ones)
        ws.send(["[" * 500, "]" * 501])
        results.append(frames(ws))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        results.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    with connect(streams.url("/v1beta2/crypto")) as first, connect(streams.url("/v1beta2/crypto")) as second:
        for ws in (first, second):
            frames(ws)
            ws.send(auth(key, secret))
        results.append(frames(first))
        results.append(frames(second))
        with pytest.raises(ConnectionClosed):
            second.recv(timeout=5)
    settings.STREAM_AUTH_TIMEOUT_SECONDS = 0.3
    with connect(streams.url("/v1beta2/crypto")) as late:
        frames(late)
        results.append(frames(late))
        with pytest.raises(ConnectionClosed) as closed:
            late.recv(timeout=5)
        results.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    # then
    assert results == [
        [{"T": "error", "code": 400, "msg": "invalid syntax"}],
        (1009, "message too big"),
        [{"T": "success", "msg": "authenticated"}],
        [{"T": "error", "code": 406, "msg": "connection limit exceeded"}],
        [{"T": "error", "code": 404, "msg": "auth timeout"}],
        (1008, "auth timeout"),
    ]
    assert server_errors() == []


def test_a_websocket_to_a_path_that_is_no_stream_is_refused(streams, server_errors):
    with pytest.raises(InvalidStatus) as refused:
        connect(streams.url("/v2/orders"))
    assert refused.value.response.status_code == 403
    assert server_errors() == []


def test_market_data_leaves_batched_and_each_reply_in_a_frame_of_its_own(streams, user, make_key, server_errors):
    # given: a client subscribed to quotes
    key, secret = make_key(user)
    quotes = [
        wire.quote(PriceEvent("BTC", Decimal(p), Decimal(p), Decimal(p), AS_OF, "simulated")) for p in ("1", "2", "3")
    ]
    with connect(streams.url("/v1beta2/crypto")) as ws:
        frames(ws)
        ws.send(auth(key, secret))
        frames(ws)
        ws.send(json.dumps({"action": "subscribe", "quotes": ["BTC/USD"]}))
        subscription = frames(ws)

        # when: a quote, a reply and two quotes wait for the writer at once
        async def queue() -> None:
            (connection,) = streams.hub._market["quotes"]["BTC/USD"]
            connection.offer(quotes[0])
            connection.reply(connection.subscription())
            connection.offer(quotes[1])
            connection.offer(quotes[2])

        streams.call(queue)
        received = [frames(ws) for _ in range(3)]
    # then: CCXT reads a frame that starts with a reply as that reply only
    assert [[m.get("bp", m["T"]) for m in frame] for frame in received] == [[1.0], ["subscription"], [2.0, 3.0]]
    assert received[1] == subscription
    assert server_errors() == []
