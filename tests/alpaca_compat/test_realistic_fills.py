"""A realistic account through alpaca-py (docs/DESIGN.md, "Fill model"): a market BUY fills at
the ask plus slippage and pays a CFEE activity; the order's fill agrees with the activities."""

from __future__ import annotations

from decimal import Decimal

from alpaca.trading.models import NonTradeActivity, TradeActivity
from alpaca.trading.requests import MarketOrderRequest

from orders.services import set_account_fill_model


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
