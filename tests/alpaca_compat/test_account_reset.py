"""A reset account as alpaca-py sees it (docs/DESIGN.md, "Reset and exports"): the same keys keep
working, cash and equity are the new amount, no positions, the open orders canceled; the reset
shows as journal activities (JNLC for its cash, JNLS for each holding taken out) and the
portfolio history starts over from it."""

from __future__ import annotations

import json
from decimal import Decimal

import requests
from alpaca.trading.enums import OrderStatus, QueryOrderStatus
from alpaca.trading.models import NonTradeActivity, TradeActivity, TradeUpdate
from alpaca.trading.requests import GetOrdersRequest, GetPortfolioHistoryRequest, LimitOrderRequest, MarketOrderRequest

from accounts.services import issue_token
from alpaca_compat import render
from alpaca_compat.streams.wire import trade_update
from balances.models import UsdBalance
from orders.events import OrderEvent
from orders.models import Order, OrderEventRecord
from orders.services import place_order, reset_account
from orders.validation import OrderRequest


def test_alpaca_py_sees_a_reset_account_as_alpaca_shows_one(
    trading, live_server, user, btc, eth, set_price, ledger_reconciles
):
    # given a bot that bought BTC and ETH and rests a limit, then its owner resets to 2,500.00
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc"))
    trading.submit_order(MarketOrderRequest(symbol="ETH/USD", qty=1, side="buy", time_in_force="gtc"))
    resting = trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc", limit_price=40000)
    )
    reset = requests.post(
        f"{live_server.url}/api/v1/account/reset/",
        json={"cash": "2500.00", "client_reference": "fresh-start"},
        headers={"Authorization": f"Token {issue_token(user=user).key}"},
        timeout=10,
    )
    assert reset.status_code == 201

    # when the same client, with the same key, looks again
    account = trading.get_account()
    positions = trading.get_all_positions()
    canceled = trading.get_order_by_id(resting.id)
    still_open = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))

    # then
    assert (account.cash, account.buying_power, account.equity, account.portfolio_value) == (
        "2500.00",
        "2500.00",
        "2500.00",
        "2500.00",
    )
    assert account.long_market_value == "0.00"
    assert positions == []
    assert (canceled.status, still_open) == (OrderStatus.CANCELED, [])
    ledger_reconciles()

    # and the key trades on from the new cash
    trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc"))
    assert trading.get_account().cash == "2000.00"
    assert [p.symbol for p in trading.get_all_positions()] == ["BTCUSD"]
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("2000.00")
    ledger_reconciles()


def test_a_reset_shows_as_journal_activities_and_restarts_the_history(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc"))
    reset_account(user=user, cash=Decimal("3000.00"))

    # when
    everything = trading.get("/account/activities")
    cash_journal = trading.get("/account/activities/JNLC")
    holdings_journal = trading.get("/account/activities", {"activity_types": "JNLS"})
    non_trade = trading.get("/account/activities", {"category": "non_trade_activity"})
    history = trading.get_portfolio_history(GetPortfolioHistoryRequest(period="1D", timeframe="1H"))

    # then the cash set (3,000.00 from 5,000.00) and the holding taken out, as alpaca-py reads them
    assert [a["activity_type"] for a in everything] == ["JNLC", "JNLS", "FILL", "CSD"]
    cash = NonTradeActivity(**cash_journal[0])
    assert (len(cash_journal), cash.net_amount, cash.description) == (1, -2000.0, "Account reset")
    taken_out = NonTradeActivity(**holdings_journal[0])
    assert (len(holdings_journal), taken_out.symbol, taken_out.qty, taken_out.net_amount) == (1, "BTC/USD", -0.1, 0.0)
    assert [a["activity_type"] for a in non_trade] == ["JNLC", "JNLS", "CSD"]
    TradeActivity(**everything[2])
    assert (history.base_value, history.equity[-1]) == (3000.0, 3000.0)


def test_the_orders_a_reset_cancels_stream_as_canceled_trade_updates_alpaca_py_reads(user, btc, set_price):
    # given two resting orders
    set_price("BTC", "50000")
    resting = [
        place_order(
            user=user,
            request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=price),
        ).order
        for price in (Decimal("40000"), Decimal("41000"))
    ]
    OrderEventRecord.objects.all().delete()

    # when
    reset_account(user=user, cash=Decimal("100.00"))

    # then one canceled event each, in the outbox, that renders as the order is now stored
    payloads = OrderEventRecord.objects.order_by("id").values_list("payload", flat=True)
    updates = [json.loads(trade_update(OrderEvent.from_json(payload)))["data"] for payload in payloads]
    assert [(u["event"], u["order"]["id"], u["order"]["status"]) for u in updates] == [
        ("canceled", str(order.pk), "canceled") for order in resting
    ]
    for update, order in zip(updates, resting, strict=True):
        assert update["order"] == render.order_json(Order.objects.get(pk=order.pk))
        TradeUpdate(**update)  # what alpaca-py's stream does with it
