"""Orders through alpaca-py: submit, list, get, cancel, cancel all, and their errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, OrderType, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest, StopOrderRequest

from alpaca_compat import render
from alpaca_compat.symbols import asset_uuid
from balances.models import AssetBalance, CashTransaction, UsdBalance
from orders.models import Order
from orders.validation import OrderRequest


def test_market_buy_fills_at_the_market_and_is_the_same_order_row(
    trading, credentials, user, btc, set_price, ledger_reconciles
):
    # given
    set_price("BTC", "50000")

    # when
    order = trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )

    # then
    assert order.status == OrderStatus.FILLED
    assert order.symbol == "BTC/USD"
    assert order.asset_id == asset_uuid("BTC")
    assert order.qty == "0.01"
    assert order.filled_qty == "0.01"
    assert order.filled_avg_price == "50000"
    assert order.type == OrderType.MARKET
    assert order.order_class == OrderClass.SIMPLE
    row = Order.objects.get(pk=order.id)
    assert (row.status, row.quantity, row.total_amount, row.placed_via, row.api_key_id) == (
        Order.Status.COMPLETED,
        Decimal("0.01"),
        Decimal("500.00"),
        Order.PlacedVia.ALPACA,
        credentials[0],
    )
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("0.01")
    ledger_reconciles()


def test_limit_buy_below_the_market_rests_with_a_hold_and_is_found_by_id_and_client_id(
    trading, user, btc, set_price, ledger_reconciles
):
    # given
    set_price("BTC", "50000")

    # when
    placed = trading.submit_order(
        LimitOrderRequest(
            symbol="BTCUSD",
            qty=0.02,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=40000,
            client_order_id="dip-1",
        )
    )

    # then
    assert placed.status == OrderStatus.ACCEPTED
    assert (placed.type, placed.limit_price, placed.client_order_id) == (OrderType.LIMIT, "40000", "dip-1")
    assert trading.get_order_by_id(placed.id).status == OrderStatus.NEW
    assert trading.get_order_by_client_id("dip-1").id == placed.id
    balance = UsdBalance.objects.get(user=user)
    assert (balance.current_balance, balance.held) == (Decimal("10000.00"), Decimal("800.00"))
    ledger_reconciles()


def test_an_order_placed_without_client_order_id_answers_to_its_id(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    order = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.001, side="buy", time_in_force="gtc"))

    # when
    found = trading.get_order_by_client_id(str(order.id))

    # then
    assert order.client_order_id == str(order.id)
    assert found.id == order.id
    assert Order.objects.get(pk=order.id).client_order_id is None


def test_market_sell_after_a_buy_pays_the_proceeds(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "50000")
    trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc"))
    set_price("BTC", "51000.5")

    # when
    sold = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.004, side="sell", time_in_force="gtc"))

    # then
    assert (sold.status, sold.side, sold.filled_avg_price) == (OrderStatus.FILLED, OrderSide.SELL, "51000.5")
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9704.00")  # 9500 + 204.002 down
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("0.006")
    ledger_reconciles()


def test_insufficient_balance_is_alpacas_403_and_moves_nothing(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "63390")
    before = UsdBalance.objects.get(user=user).current_balance

    # when
    with pytest.raises(APIError) as raised:
        trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=1, side="buy", time_in_force="gtc"))

    # then
    error = raised.value
    assert error.status_code == 403
    assert error.code == 40310000
    assert error.message == "insufficient balance for USD (requested: 63390.00, available: 10000.00)"
    assert UsdBalance.objects.get(user=user).current_balance == before
    assert not AssetBalance.objects.filter(user=user).exists()
    assert list(Order.objects.values_list("status", flat=True)) == [Order.Status.FAILED]
    assert trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))[0].status == OrderStatus.REJECTED
    ledger_reconciles()


def test_selling_what_is_not_held_is_refused_not_shorted(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")

    # when
    with pytest.raises(APIError) as raised:
        trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.5, side="sell", time_in_force="gtc"))

    # then
    assert (raised.value.status_code, raised.value.code) == (403, 40310000)
    assert raised.value.message == "insufficient balance for BTC (requested: 0.5, available: 0)"
    assert not AssetBalance.objects.filter(user=user).exists()


def test_unknown_symbol_is_refused_and_stores_nothing(trading, user, btc, set_price):
    # when
    with pytest.raises(APIError) as raised:
        trading.submit_order(MarketOrderRequest(symbol="NOPE/USD", qty=1, side="buy", time_in_force="gtc"))

    # then
    assert (raised.value.status_code, raised.value.code) == (422, 40010001)
    assert raised.value.message == 'asset "NOPE/USD" not found'
    assert not Order.objects.exists()


def test_a_bad_key_is_alpacas_401(live_server, user, btc):
    # given
    from alpaca.trading.client import TradingClient

    client = TradingClient("PKNOSUCHKEY", "not-the-secret", paper=True, url_override=live_server.url)

    # when
    with pytest.raises(APIError) as raised:
        client.get_account()

    # then
    assert (raised.value.status_code, raised.value.code, raised.value.message) == (
        401,
        40110000,
        "request is not authorized",
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"order_class": "bracket", "take_profit": {"limit_price": 60000}, "stop_loss": {"stop_price": 40000}},
            "order_class bracket is not supported: only simple crypto orders are",
        ),
        ({"order_class": "oco"}, "order_class oco is not supported: only simple crypto orders are"),
        ({"order_class": "oto"}, "order_class oto is not supported: only simple crypto orders are"),
        ({"type": "trailing_stop", "trail_percent": "5"}, "trailing stop orders are not supported"),
        ({"extended_hours": True}, "extended hours orders are not supported for crypto"),
        ({"position_intent": "sell_to_open", "side": "sell"}, "short selling is not supported"),
    ],
)
def test_unsupported_alpaca_features_are_422_and_place_nothing(trading, user, btc, set_price, extra, message):
    # given
    set_price("BTC", "50000")
    request = {"symbol": "BTC/USD", "qty": "0.01", "side": "buy", "type": "market", "time_in_force": "gtc", **extra}

    # when: through the SDK's own request path (its models refuse some of these client-side)
    with pytest.raises(APIError) as raised:
        trading.post("/orders", request)

    # then
    assert (raised.value.status_code, raised.value.code, raised.value.message) == (422, 42210000, message)
    assert not Order.objects.exists()


def test_a_bracket_order_from_the_sdks_model_is_refused(trading, user, btc, set_price):
    # given
    from alpaca.trading.requests import StopLossRequest, TakeProfitRequest

    set_price("BTC", "50000")
    request = MarketOrderRequest(
        symbol="BTC/USD",
        qty=0.01,
        side="buy",
        time_in_force="gtc",
        order_class=OrderClass.BRACKET,
        take_profit=TakeProfitRequest(limit_price=60000),
        stop_loss=StopLossRequest(stop_price=40000),
    )

    # when
    with pytest.raises(APIError) as raised:
        trading.submit_order(request)

    # then
    assert (raised.value.status_code, raised.value.code) == (422, 42210000)
    assert not Order.objects.exists()


def test_list_filters_status_side_symbols_direction_limit_and_time(trading, user, btc, eth, set_price):
    # given: a filled BTC buy, a resting ETH limit buy, a resting BTC limit sell
    set_price("BTC", "50000")
    set_price("ETH", "2500")
    filled = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc"))
    eth_buy = trading.submit_order(
        LimitOrderRequest(symbol="ETH/USD", qty=1, side="buy", time_in_force="gtc", limit_price=2000)
    )
    btc_sell = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.005, side="sell", time_in_force="gtc", limit_price=60000)
    )

    def ids(**filters):
        return [order.id for order in trading.get_orders(GetOrdersRequest(**filters))]

    # then
    assert ids() == [btc_sell.id, eth_buy.id]  # default: open, newest first
    assert ids(status=QueryOrderStatus.CLOSED) == [filled.id]
    assert ids(status=QueryOrderStatus.ALL) == [btc_sell.id, eth_buy.id, filled.id]
    assert ids(status=QueryOrderStatus.ALL, direction="asc") == [filled.id, eth_buy.id, btc_sell.id]
    assert ids(status=QueryOrderStatus.ALL, limit=1) == [btc_sell.id]
    assert ids(status=QueryOrderStatus.ALL, symbols=["BTC/USD"]) == [btc_sell.id, filled.id]
    assert ids(status=QueryOrderStatus.ALL, side=OrderSide.BUY) == [eth_buy.id, filled.id]
    assert ids(status=QueryOrderStatus.ALL, after=eth_buy.created_at) == [btc_sell.id]
    assert ids(status=QueryOrderStatus.ALL, until=eth_buy.created_at) == [filled.id]


def test_cancel_releases_the_hold_and_cancelling_a_filled_order_is_422(
    trading, user, btc, set_price, ledger_reconciles
):
    # given
    set_price("BTC", "50000")
    resting = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", limit_price=45000)
    )
    filled = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc"))

    # when
    trading.cancel_order_by_id(resting.id)
    with pytest.raises(APIError) as raised:
        trading.cancel_order_by_id(filled.id)

    # then
    cancelled = trading.get_order_by_id(resting.id)
    assert cancelled.status == OrderStatus.CANCELED
    assert cancelled.canceled_at is not None
    assert (raised.value.status_code, raised.value.code) == (422, 42210000)
    assert raised.value.message == 'order is already in "filled" state'
    assert UsdBalance.objects.get(user=user).held == Decimal("0.00")
    ledger_reconciles()


def test_cancel_all_cancels_every_open_order(trading, user, btc, eth, set_price, ledger_reconciles):
    # given
    set_price("BTC", "50000")
    set_price("ETH", "2500")
    first = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", limit_price=45000)
    )
    second = trading.submit_order(
        LimitOrderRequest(symbol="ETH/USD", qty=1, side="buy", time_in_force="gtc", limit_price=2000)
    )

    # when
    answers = trading.cancel_orders()

    # then
    assert sorted((a.id, a.status) for a in answers) == sorted([(first.id, 200), (second.id, 200)])
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.CANCELLED}
    assert UsdBalance.objects.get(user=user).held == Decimal("0.00")
    ledger_reconciles()


def test_another_users_order_is_404(trading, user, other_user, btc, set_price):
    # given
    from orders.services import place_order

    set_price("BTC", "50000")
    theirs = place_order(
        user=other_user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.001"))
    ).order

    # when
    with pytest.raises(APIError) as get_error:
        trading.get_order_by_id(theirs.order_id)
    with pytest.raises(APIError) as cancel_error:
        trading.cancel_order_by_id(theirs.order_id)

    # then
    assert (get_error.value.status_code, get_error.value.code, get_error.value.message) == (
        404,
        40410000,
        "order not found",
    )
    assert cancel_error.value.status_code == 404
    assert CashTransaction.objects.filter(user=user).count() == 1  # the opening deposit only


# --- transient refusals and replays ------------------------------------------------------


def test_a_price_outage_is_alpacas_503_with_retry_after_and_the_retry_is_placed_once(
    trading, user, btc, coingecko_server
):
    # given a provider answering 500 to every try of the first request
    coingecko_server.fail_next(500, times=3)
    request = MarketOrderRequest(
        symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, client_order_id="bot-7"
    )
    with pytest.raises(APIError) as refused:
        trading.submit_order(request)
    # when: the bot sends the same order once the provider is back, and once more
    coingecko_server.set_price("bitcoin", "50000")
    placed = trading.submit_order(request)
    again = trading.submit_order(request)

    # then: the 503 kept Alpaca's shape, said when to retry and burnt no client_order_id
    assert (refused.value.status_code, refused.value.code) == (503, 50310000)
    assert refused.value.response.headers["Retry-After"] == "2"
    assert (placed.status, placed.client_order_id) == (OrderStatus.FILLED, "bot-7")
    assert again.id == placed.id
    assert Order.objects.get().client_order_id == "bot-7"
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")


def test_a_stop_triggered_on_arrival_is_stored_as_a_stop_and_its_retry_replays(trading, user, btc, set_price):
    # given: the market (50000) is already above the stop
    set_price("BTC", "50000")
    request = StopOrderRequest(
        symbol="BTC/USD",
        qty=0.01,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        stop_price=49000,
        client_order_id="stop-1",
    )

    # when
    placed = trading.submit_order(request)
    again = trading.submit_order(request)

    # then: the retry answers the same order (not 422 "client_order_id must be unique"), and
    # the order reads back as the stop it was answered as
    assert (placed.status, placed.type, placed.stop_price) == (OrderStatus.FILLED, OrderType.STOP, "49000")
    assert again.id == placed.id
    shown = trading.get_order_by_id(placed.id)
    assert (shown.type, shown.order_type, shown.stop_price, shown.filled_avg_price) == (
        OrderType.STOP,
        OrderType.STOP,
        "49000",
        "50000",
    )
    assert Order.objects.get().triggered_at is not None
    assert CashTransaction.objects.filter(user=user).count() == 2


def test_cancel_all_answers_the_time_each_order_was_cancelled(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    resting = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", limit_price=45000)
    )

    # when
    [answer] = trading.cancel_orders()

    # then: the answer's times are those the order reads back with, after its creation
    shown = trading.get_order_by_id(resting.id).model_dump(mode="json")
    assert answer.body["status"] == "canceled"
    assert (answer.body["canceled_at"], answer.body["updated_at"]) == (shown["canceled_at"], shown["updated_at"])
    assert answer.body["updated_at"] > answer.body["created_at"]
    assert render.iso(Order.objects.get().updated_at) == answer.body["updated_at"]


def test_an_error_message_writes_its_numbers_plainly(trading, user, make_asset, set_price):
    # given an asset traded in whole units, dearer than the notional asked for
    make_asset("WHOLE", quantity_decimals=0)
    set_price("WHOLE", "50000")

    # when
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(symbol="WHOLE/USD", notional=100, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )

    # then
    assert (refused.value.status_code, refused.value.code) == (422, 40010000)
    assert refused.value.message == "100.00 USD buys less than one step of WHOLE."
