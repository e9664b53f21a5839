"""The streams end to end, against a live server: orders placed, replaced and cancelled through
`/v2` (alpaca-py's TradingClient) and `/api/v1`, filled and expired by `process_orders` in a
process of its own, cancelled by staff in the admin; prices from the provider. alpaca-py's
TradingStream and CryptoDataStream (msgpack), and a plain JSON client speaking
alpaca-trade-api's and CCXT's dialect, receive what happened, as the REST API shows it."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta

import pytest
import requests
from alpaca.data.historical import CryptoHistoricalDataClient
from alpaca.data.live import CryptoDataStream
from alpaca.data.models import Bar, Quote, Trade
from alpaca.data.requests import CryptoBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from websockets.sync.client import connect

from accounts.services import issue_token
from orders.events import OUTBOX
from orders.models import Order
from tests.alpaca_compat.streams.clients import running
from tests.support.processes import PYTHON, ROOT, database_url, python_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class ApiV1:
    """The service's own API over HTTP, with a token, as a script would call it."""

    def __init__(self, base: str, token: str) -> None:
        self.base = f"{base}/api/v1/orders/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def _answer(self, response: requests.Response, status: int) -> dict:
        assert response.status_code == status, response.text
        return response.json()

    def place(self, **body) -> dict:
        return self._answer(self.session.post(self.base, json={"asset_id": "BTC", **body}, timeout=10), 201)

    def replace(self, order_id: str, **changes) -> dict:
        return self._answer(self.session.patch(f"{self.base}{order_id}/", json=changes, timeout=10), 200)

    def cancel(self, order_id: str) -> dict:
        return self._answer(self.session.post(f"{self.base}{order_id}/cancel/", timeout=10), 200)


def process_orders_once(coingecko_server) -> None:
    """One pass of the order processor in a process of its own, pricing BTC from the local
    CoinGecko (asked on this pass: no reuse of the last good price)."""
    env = python_env(
        DATABASE_URL=database_url(connection.settings_dict),
        PRICE_PROVIDER="coingecko",
        COINGECKO_API_URL=coingecko_server.url,
        COINGECKO_TIMEOUT_SECONDS="2",
        COINGECKO_RETRIES="0",
        PRICE_CACHE_SECONDS="0",
    )
    done = subprocess.run(
        [PYTHON, "manage.py", "process_orders", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def next_second() -> int:
    """A provider stamp after any price a fixture stored this second: CoinGecko stamps in whole
    seconds, and the price guard ignores a quote stamped before the last good price, so a new
    price stamped with the current second could be ignored (the guard is right: it is older)."""
    return int(time.time()) + 1


def staff_cancel(staff, order_id) -> None:
    """A support staff member cancels the order with the admin's action."""
    client = Client()
    client.force_login(staff)
    response = client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_pending_orders", "_selected_action": [str(order_id)]},
    )
    assert response.status_code == 302


def test_trading_stream_sees_every_api_the_processor_and_staff_act_each_as_get_v2_orders_shows_it(
    streams, user, make_key, btc_at_50k, coingecko_server, support_staff, server_errors
):
    # given: alpaca-py's stream listening, its REST client, a script's token for /api/v1, and
    # a plain JSON client speaking CCXT's dialect on alpaca-trade-api's path, with its own key
    key, secret = make_key(user)
    json_key, json_secret = make_key(user, "json client")
    base = f"http://127.0.0.1:{streams.port}"
    trading = TradingClient(key, secret, paper=True, url_override=base)
    api_v1 = ApiV1(base, issue_token(user=user).key)
    coingecko_server.set_price("bitcoin", "50000")
    received: list[TradeUpdate] = []

    async def on_update(update: TradeUpdate) -> None:
        received.append(update)

    stream = TradingStream(key, secret, paper=True, url_override=streams.url("/stream"))
    stream.subscribe_trade_updates(on_update)
    with running(stream), connect(streams.url("/stream/")) as plain:
        plain.send(json.dumps({"action": "auth", "key": json_key, "secret": json_secret}))
        assert json.loads(plain.recv(timeout=5))["data"]["status"] == "authorized"
        plain.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(plain.recv(timeout=5)) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
        wait_for(lambda: streams.trade_listeners(user.pk) == 2, timeout=10, what="alpaca-py to listen")
        # when: /v2
        limit = {"symbol": "BTC/USD", "qty": 0.01, "side": "buy", "time_in_force": "gtc"}
        v2_resting = trading.submit_order(LimitOrderRequest(**limit, limit_price=40000))
        v2_bought = trading.submit_order(MarketOrderRequest(**{**limit, "qty": 0.01}))
        v2_successor = trading.replace_order_by_id(v2_resting.id, ReplaceOrderRequest(limit_price=41000))
        trading.cancel_order_by_id(v2_successor.id)
        # /api/v1
        v1_resting = api_v1.place(order_type="BUY", quantity="0.01", order_price="42000")
        v1_successor = api_v1.replace(v1_resting["order_id"], order_price="43000")
        v1_bought = api_v1.place(order_type="BUY", quantity="0.01")
        api_v1.cancel(v1_successor["order_id"])
        # the processor: the market falls to 44000, one order fills, one is past its expiry
        to_fill = trading.submit_order(LimitOrderRequest(**limit, limit_price=45000))
        to_expire = api_v1.place(order_type="BUY", quantity="0.01", order_price="30000")
        Order.objects.filter(pk=to_expire["order_id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
        coingecko_server.set_price("bitcoin", "44000", updated_at=next_second())
        process_orders_once(coingecko_server)
        # staff
        to_cancel = trading.submit_order(LimitOrderRequest(**limit, limit_price=39000))
        staff_cancel(support_staff, to_cancel.id)
        try:
            wait_for(lambda: len(received) >= 18, timeout=10, what="eighteen trade updates")
        except AssertionError as timed_out:  # say what did arrive, and what the outbox holds
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT id, txid::text, left(payload, 90) FROM {OUTBOX} ORDER BY id")
                outbox = cursor.fetchall()
            arrived = [(update.event, str(update.order.id)) for update in received]
            raise AssertionError(f"{timed_out}: received {arrived}; the outbox: {outbox}") from None
        plain_received = [json.loads(plain.recv(timeout=5)) for _ in range(18)]
    # then: Alpaca's words, in commit order, each a TradeUpdate alpaca-py accepted
    ids = {
        str(v2_resting.id): "v2 resting",
        str(v2_bought.id): "v2 bought",
        str(v2_successor.id): "v2 successor",
        v1_resting["order_id"]: "v1 resting",
        v1_successor["order_id"]: "v1 successor",
        v1_bought["order_id"]: "v1 bought",
        str(to_fill.id): "to fill",
        to_expire["order_id"]: "to expire",
        str(to_cancel.id): "to cancel",
    }
    assert all(isinstance(update, TradeUpdate) for update in received)
    assert [(u.event, ids[str(u.order.id)]) for u in received] == [
        ("new", "v2 resting"),
        ("new", "v2 bought"),
        ("fill", "v2 bought"),
        ("replaced", "v2 resting"),
        ("new", "v2 successor"),
        ("canceled", "v2 successor"),
        ("new", "v1 resting"),
        ("replaced", "v1 resting"),
        ("new", "v1 successor"),
        ("new", "v1 bought"),
        ("fill", "v1 bought"),
        ("canceled", "v1 successor"),
        ("new", "to fill"),
        ("new", "to expire"),
        ("expired", "to expire"),
        ("fill", "to fill"),
        ("new", "to cancel"),
        ("canceled", "to cancel"),
    ]
    # each order's last event claims what GET /v2/orders/{id} shows now
    last = {str(u.order.id): u.order for u in received}
    for order_id, order in last.items():
        assert order == trading.get_order_by_id(order_id), ids[order_id]
    # the JSON client got the same events, each as GET /v2/orders/{id} showed the order then
    assert [(m["stream"], m["data"]["event"], m["data"]["order"]["id"]) for m in plain_received] == [
        ("trade_updates", u.event, str(u.order.id)) for u in received
    ]
    assert [TradeUpdate(**m["data"]) for m in plain_received] == received
    raw_last = {m["data"]["order"]["id"]: m["data"]["order"] for m in plain_received}
    for order_id, order in raw_last.items():
        assert order == trading.get(f"/orders/{order_id}"), ids[order_id]
    fills = [u for u in received if u.event == "fill"]
    assert [(u.price, u.qty, u.position_qty) for u in fills] == [
        (50000.0, 0.01, 0.01),
        (50000.0, 0.01, 0.02),
        (44000.0, 0.01, 0.03),
    ]
    assert server_errors() == []


def test_crypto_data_stream_and_a_ccxt_style_client_get_the_providers_prices_the_processors_fill_and_its_bars(
    streams, user, make_key, btc_at_50k, coingecko_server, server_errors
):
    # given: alpaca-py (msgpack, /v1beta3/crypto/us) and a JSON client (/v1beta2/crypto), each
    # with a key of its own (one connection per key), and a resting order the next price crosses
    key, secret = make_key(user)
    ccxt_key, ccxt_secret = make_key(user, "ccxt")
    trading = TradingClient(key, secret, paper=True, url_override=f"http://127.0.0.1:{streams.port}")
    resting = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", limit_price=45000)
    )
    streams.settle()  # the fixture's price and the order are no market data of this test
    coingecko_server.set_price("bitcoin", "44000", updated_at=next_second())
    received: list = []

    async def collect(item) -> None:
        received.append(item)

    stream = CryptoDataStream(key, secret, url_override=streams.url("/v1beta3/crypto/us"))
    for subscribe in (stream.subscribe_quotes, stream.subscribe_trades, stream.subscribe_bars):
        subscribe(collect, "BTC/USD")
    stream.subscribe_daily_bars(collect, "BTC/USD")
    with running(stream), connect(streams.url("/v1beta2/crypto")) as ccxt:
        assert json.loads(ccxt.recv(timeout=5)) == [{"T": "success", "msg": "connected"}]
        ccxt.send(json.dumps({"action": "auth", "key": ccxt_key, "secret": ccxt_secret}))
        assert json.loads(ccxt.recv(timeout=5)) == [{"T": "success", "msg": "authenticated"}]
        ccxt.send(json.dumps({"action": "subscribe", "quotes": ["BTC/USD"], "trades": ["BTC/USD"]}))
        assert json.loads(ccxt.recv(timeout=5))[0]["T"] == "subscription"
        wait_for(lambda: streams.subscribers("dailyBars") == 1, timeout=10, what="alpaca-py to subscribe")
        # when: the processor prices BTC from the provider and fills the order
        process_orders_once(coingecko_server)
        # (a quote for each time the processor asked the provider: once or twice in a pass, each
        # a new price when the provider's time changed in between)
        wait_for(lambda: any(isinstance(item, Trade) for item in received), timeout=5, what="the trade")
        ccxt_messages: list[dict] = []
        while not any(m["T"] == "t" for m in ccxt_messages):  # one frame or more, as batched
            ccxt_messages += json.loads(ccxt.recv(timeout=5))
        # and the minute of that price closes
        quotes = [item for item in received if isinstance(item, Quote)]
        minute = quotes[-1].timestamp.replace(second=0, microsecond=0)
        streams.close_minute(minute + timedelta(minutes=1))
        wait_for(lambda: sum(isinstance(i, Bar) for i in received) == 2, timeout=5, what="the minute's and day's bars")
    # then: the quotes and the trade as alpaca-py parsed them (msgpack), and the JSON client's
    (trade,) = [item for item in received if isinstance(item, Trade)]
    minute_bar, day_bar = [item for item in received if isinstance(item, Bar)]
    filled = Order.objects.get(pk=resting.id)
    assert 1 <= len(quotes) <= 2
    assert {(q.symbol, q.bid_price, q.ask_price) for q in quotes} == {("BTC/USD", 44000.0, 44000.0)}
    assert len(received) == len(quotes) + 3
    assert (trade.symbol, trade.price, trade.size, trade.timestamp) == ("BTC/USD", 44000.0, 0.01, filled.filled_at)
    assert [(m["T"], m.get("bp"), m.get("p")) for m in ccxt_messages] == [("q", 44000.0, None)] * len(quotes) + [
        ("t", None, 44000.0)
    ]
    # the bars are those the REST API has for the minute and the day
    history = CryptoHistoricalDataClient(key, secret, url_override=f"http://127.0.0.1:{streams.port}")

    def rest_bar(timeframe, start: datetime) -> Bar:
        request = CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=timeframe, start=start)
        return history.get_crypto_bars(request)["BTC/USD"][0]

    day = minute.replace(hour=0, minute=0)
    for streamed, rest in ((minute_bar, rest_bar(TimeFrame.Minute, minute)), (day_bar, rest_bar(TimeFrame.Day, day))):
        fields = ("symbol", "timestamp", "open", "high", "low", "close", "trade_count")
        assert [getattr(streamed, f) for f in fields] == [getattr(rest, f) for f in fields]
    assert (minute_bar.timestamp, day_bar.timestamp) == (minute, day)
    assert server_errors() == []
