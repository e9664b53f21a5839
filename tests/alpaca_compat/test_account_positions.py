"""Account and positions through alpaca-py, checked against the database and the ledgers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import AccountStatus, AssetClass, OrderSide, OrderStatus, PositionSide
from alpaca.trading.requests import ClosePositionRequest, LimitOrderRequest, MarketOrderRequest

from alpaca_compat.symbols import asset_uuid
from balances.models import AssetBalance, UsdBalance
from orders.models import Order


def _buy(trading, symbol: str, qty: float):
    return trading.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side="buy", time_in_force="gtc"))


def test_account_shows_cash_buying_power_and_equity(trading, user, btc, set_price):
    # given: 0.1 BTC bought at 50000 and a resting limit holding 800.00
    set_price("BTC", "50000")
    _buy(trading, "BTC/USD", 0.1)
    trading.submit_order(
        LimitOrderRequest(symbol="BTC/USD", qty=0.02, side="buy", time_in_force="gtc", limit_price=40000)
    )
    set_price("BTC", "52000")

    # when
    account = trading.get_account()

    # then
    assert (account.status, account.crypto_status, account.currency) == (
        AccountStatus.ACTIVE,
        AccountStatus.ACTIVE,
        "USD",
    )
    assert account.cash == "5000.00"
    assert account.buying_power == "4200.00"
    assert account.non_marginable_buying_power == "4200.00"
    assert account.long_market_value == "5200.00"
    assert account.equity == account.portfolio_value == "10200.00"
    assert (account.multiplier, account.shorting_enabled) == ("1", False)


def test_positions_list_and_get_by_any_symbol_form(trading, user, btc, eth, set_price):
    # given
    set_price("BTC", "50000")
    set_price("ETH", "2500")
    _buy(trading, "BTC/USD", 0.1)
    _buy(trading, "ETH/USD", 2)
    set_price("BTC", "55000")

    # when
    positions = trading.get_all_positions()
    by_pair = trading.get_open_position("BTC/USD")
    by_plain = trading.get_open_position("BTCUSD")
    by_uuid = trading.get_open_position(asset_uuid("BTC"))

    # then
    assert [p.symbol for p in positions] == ["BTCUSD", "ETHUSD"]
    assert by_pair == by_plain == by_uuid
    assert (by_pair.side, by_pair.asset_class, by_pair.asset_id) == (
        PositionSide.LONG,
        AssetClass.CRYPTO,
        asset_uuid("BTC"),
    )
    assert (by_pair.qty, by_pair.qty_available, by_pair.avg_entry_price) == ("0.1", "0.1", "50000")
    assert (by_pair.cost_basis, by_pair.market_value, by_pair.unrealized_pl) == ("5000.00", "5500.00", "500.00")
    assert by_pair.unrealized_plpc == "0.1"
    assert by_pair.current_price == "55000"


def test_a_position_not_held_is_404(trading, user, btc, set_price):
    # when
    with pytest.raises(APIError) as raised:
        trading.get_open_position("BTC/USD")

    # then
    assert (raised.value.status_code, raised.value.code, raised.value.message) == (
        404,
        40410000,
        "position does not exist",
    )


def test_close_a_position_by_percentage_then_the_rest(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "50000")
    _buy(trading, "BTC/USD", 0.1)

    # when
    half = trading.close_position("BTC/USD", ClosePositionRequest(percentage="50"))
    rest = trading.close_position("BTCUSD")

    # then
    assert (half.status, half.side, half.qty) == (OrderStatus.FILLED, OrderSide.SELL, "0.05")
    assert (rest.status, rest.qty) == (OrderStatus.FILLED, "0.05")
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("0")
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert trading.get_all_positions() == []
    ledger_reconciles()


def test_close_a_position_by_quantity(trading, user, btc, set_price, ledger_reconciles):
    # given
    set_price("BTC", "50000")
    _buy(trading, "BTC/USD", 0.1)

    # when
    order = trading.close_position("BTC/USD", ClosePositionRequest(qty="0.03"))

    # then
    assert order.qty == "0.03"
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("0.07")
    ledger_reconciles()


def test_close_all_positions_cancels_open_orders_first(trading, user, btc, eth, set_price, ledger_reconciles):
    # given: two holdings, one of them partly held by a resting sell
    set_price("BTC", "50000")
    set_price("ETH", "2500")
    _buy(trading, "BTC/USD", 0.1)
    _buy(trading, "ETH/USD", 2)
    trading.submit_order(LimitOrderRequest(symbol="ETH/USD", qty=1, side="sell", time_in_force="gtc", limit_price=3000))

    # when
    answers = trading.close_all_positions(cancel_orders=True)

    # then
    assert sorted((a.symbol, a.status) for a in answers) == [("BTCUSD", 200), ("ETHUSD", 200)]
    assert {a.symbol: a.body.qty for a in answers} == {"BTCUSD": "0.1", "ETHUSD": "2"}
    assert set(AssetBalance.objects.values_list("quantity", "held_quantity")) == {(Decimal(0), Decimal(0))}
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert Order.objects.filter(status=Order.Status.PENDING).count() == 0
    ledger_reconciles()
