"""The engine's order kinds through alpaca-py (docs/DESIGN.md, "Alpaca compatibility"): stop and stop-limit,
notional, time in force, replace."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)

from balances.models import AssetBalance, UsdBalance
from orders.models import Order
from orders.services import process_resting_orders


def test_a_notional_market_buy_spends_at_most_the_notional(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "30000")

    # when
    order = trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", notional=100, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )

    # then: 100 / 30000 = 0.00333333 (rounded down to the step), costing 99.9999 rounded up to 100.00
    assert (order.status, order.notional, order.qty, order.filled_qty) == (
        OrderStatus.FILLED,
        "100.00",
        "0.00333333",
        "0.00333333",
    )
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9900.00")
    ledger_reconciles()


def test_a_stop_limit_sell_rests_until_the_market_falls_to_its_stop(trading, user, btc, set_price, ledger_reconciles):
    # given: 0.1 BTC held
    set_price("BTC", "50000")
    trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc"))

    # when
    placed = trading.submit_order(
        StopLimitOrderRequest(
            symbol="BTC/USD", qty=0.1, side=OrderSide.SELL, time_in_force="gtc", stop_price=45000, limit_price=44000
        )
    )
    set_price("BTC", "44900")
    process_resting_orders()

    # then
    assert (placed.status, placed.type, placed.stop_price, placed.limit_price) == (
        OrderStatus.ACCEPTED,
        OrderType.STOP_LIMIT,
        "45000",
        "44000",
    )
    filled = trading.get_order_by_id(placed.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "44900")
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("0")
    ledger_reconciles()


def test_a_stop_buy_holds_its_margin_and_cancelling_releases_it(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "50000")

    # when
    placed = trading.submit_order(
        StopOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", stop_price=55000)
    )
    held = UsdBalance.objects.get(user=user).held
    trading.cancel_order_by_id(placed.id)

    # then: 0.01 x 55000 x 1.05
    assert (placed.type, placed.status) == (OrderType.STOP, OrderStatus.ACCEPTED)
    assert held == Decimal("577.50")
    assert UsdBalance.objects.get(user=user).held == Decimal("0.00")
    ledger_reconciles()


@pytest.mark.parametrize("time_in_force", [TimeInForce.IOC, TimeInForce.FOK])
def test_an_ioc_or_fok_limit_the_market_does_not_cross_ends_canceled(
    trading, user, btc, set_price, time_in_force, ledger_reconciles
):
    # given
    set_price("BTC", "50000")

    # when
    order = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force=time_in_force, limit_price=40000)
    )

    # then
    assert (order.status, order.time_in_force) == (OrderStatus.CANCELED, time_in_force)
    assert UsdBalance.objects.get(user=user).held == Decimal("0.00")
    ledger_reconciles()


def test_an_ioc_market_buy_fills(trading, user, btc, set_price):
    set_price("BTC", "50000")
    order = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="ioc"))
    assert (order.status, order.time_in_force) == (OrderStatus.FILLED, TimeInForce.IOC)


def test_replace_moves_the_hold_to_the_new_order(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "50000")
    old = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", limit_price=40000)
    )

    # when
    new = trading.replace_order_by_id(old.id, ReplaceOrderRequest(limit_price=42000, client_order_id="moved-up"))

    # then
    replaced = trading.get_order_by_id(old.id)
    assert (replaced.status, replaced.replaced_by) == (OrderStatus.REPLACED, new.id)
    assert replaced.replaced_at is not None
    assert (new.status, new.replaces, new.limit_price, new.client_order_id) == (
        OrderStatus.NEW,
        old.id,
        "42000",
        "moved-up",
    )
    assert Order.objects.get(pk=new.id).placed_via == Order.PlacedVia.ALPACA
    assert UsdBalance.objects.get(user=user).held == Decimal("420.00")
    ledger_reconciles()


def test_replacing_a_filled_order_is_422(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    filled = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc"))

    # when
    with pytest.raises(APIError) as raised:
        trading.replace_order_by_id(filled.id, ReplaceOrderRequest(qty=1))

    # then
    assert (raised.value.status_code, raised.value.code, raised.value.message) == (
        422,
        42210000,
        'order is already in "filled" state',
    )


def test_close_all_without_cancelling_sells_only_what_open_orders_do_not_hold(
    trading, user, btc, set_price, ledger_reconciles
):
    # given: 0.1 BTC, 0.04 of it held by a resting sell
    set_price("BTC", "50000")
    trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc"))
    resting = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.04, side="sell", time_in_force="gtc", limit_price=60000)
    )

    # when
    answers = trading.close_all_positions()

    # then
    assert [(a.symbol, a.status, a.body.qty) for a in answers] == [("BTCUSD", 200, "0.06")]
    assert trading.get_order_by_id(resting.id).status == OrderStatus.NEW
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("0.04")
    ledger_reconciles()
