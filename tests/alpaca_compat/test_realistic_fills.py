"""A realistic account through alpaca-py (docs/DESIGN.md, "Fill model"): a market BUY fills at
the ask plus slippage and pays a CFEE activity; a resting limit fills in parts, and the order's
filled_qty and filled_avg_price agree with its FILL activities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from alpaca.trading.models import NonTradeActivity, TradeActivity
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from orders.services import process_resting_orders, set_account_fill_model


def test_a_realistic_market_buy_fills_at_the_ask_plus_slippage_and_pays_a_cfee(
    trading, user, btc, set_price, ledger_reconciles
):
    # given: alice realistic, BTC at 50,000 with 10 BTC traded in the minute
    set_account_fill_model(user=user, profile="realistic")
    set_price("BTC", "50000", volume=Decimal("10"))

    # when: 0.1 BTC, 1 % of the minute's volume
    order = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc"))
    fetched = trading.get_order_by_id(order.id)
    fills = trading.get("/account/activities/FILL")
    fees = trading.get("/account/activities/CFEE")

    # then: ask 50,025 (10 bps) plus 0.01^2 x 0.1 of it
    assert fetched.status.value == "filled"
    assert Decimal(fetched.filled_avg_price) == Decimal("50025.50025")
    assert Decimal(fetched.filled_qty) == Decimal("0.1")
    fill = TradeActivity(**fills[0])
    assert (fill.order_id, fill.qty, Decimal(str(fill.price))) == (order.id, 0.1, Decimal("50025.50025"))
    # the fee: 25 bps of 0.1 BTC, paid in BTC
    (fee,) = [NonTradeActivity(**raw) for raw in fees]
    assert (fee.activity_type.value, fee.symbol, fee.qty, fee.net_amount) == ("CFEE", "BTC/USD", -0.00025, 0.0)
    position = trading.get_open_position("BTC/USD")
    assert Decimal(position.qty) == Decimal("0.09975")
    ledger_reconciles()


def test_a_resting_limit_fills_in_parts_and_its_order_agrees_with_the_activities(
    trading, user, btc, set_price, ledger_reconciles
):
    # given: alice takes at most 10 % of a minute's volume; a limit BUY of 0.05 BTC at 40,000
    set_account_fill_model(user=user, fill_participation=Decimal("0.1"), maker_fee_bps=Decimal(15))
    start = datetime(2026, 12, 7, 12, 0, 5, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        set_price("BTC", "50000", volume=Decimal("0.2"))
        order = trading.submit_order(
            LimitOrderRequest(symbol="BTC/USD", qty=0.05, side="buy", time_in_force="gtc", limit_price=40000)
        )

    # when: the market crosses for a few minutes, 0.2 BTC traded a minute (0.01 to 0.02 of it hers)
    seen = []
    for minute in range(1, 4):
        with time_machine.travel(start + timedelta(minutes=minute), tick=False):
            set_price("BTC", str(39000 + minute * 100), volume=Decimal("0.2"))
            process_resting_orders()
            seen.append(trading.get_order_by_id(order.id))
    fills = [TradeActivity(**raw) for raw in trading.get("/account/activities/FILL", {"direction": "asc"})]

    # then: partly filled at first, and the order's filled_qty and filled_avg_price are its fills'
    assert seen[0].status.value == "partially_filled"
    assert 0 < Decimal(seen[0].filled_qty) < Decimal("0.05")
    last = seen[-1]
    quantities = [Decimal(str(f.qty)) for f in fills]
    assert len(fills) == 3
    assert sum(quantities) == Decimal(last.filled_qty)
    average = sum(q * Decimal(str(f.price)) for q, f in zip(quantities, fills, strict=True)) / sum(quantities)
    assert Decimal(last.filled_avg_price) == average.quantize(Decimal("1e-12"))
    assert {f.order_id for f in fills} == {order.id}
    fees = trading.get("/account/activities/CFEE")
    assert len(fees) == 3
    ledger_reconciles()
