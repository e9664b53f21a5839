"""Assets, the clock and the activities feed through alpaca-py."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import AssetClass, AssetExchange, AssetStatus
from alpaca.trading.models import NonTradeActivity, TradeActivity
from alpaca.trading.requests import GetAssetsRequest, GetPortfolioHistoryRequest, MarketOrderRequest

from alpaca_compat.symbols import asset_uuid
from balances.services import deposit, withdraw


def test_assets_list_and_get_by_symbol_or_id(trading, btc, make_asset):
    # given
    make_asset("DOGE", name="Dogecoin", quantity_decimals=2, is_active=False)

    # when
    everything = trading.get_all_assets()
    active = trading.get_all_assets(GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.CRYPTO))
    equities = trading.get_all_assets(GetAssetsRequest(asset_class=AssetClass.US_EQUITY))
    by_symbol = trading.get_asset("BTC/USD")
    by_id = trading.get_asset(asset_uuid("BTC"))

    # then
    assert [a.symbol for a in everything] == ["BTC/USD", "DOGE/USD"]
    assert [a.symbol for a in active] == ["BTC/USD"]
    assert equities == []
    assert by_symbol == by_id
    assert (by_symbol.asset_class, by_symbol.exchange, by_symbol.tradable, by_symbol.fractionable) == (
        AssetClass.CRYPTO,
        AssetExchange.CRYPTO,
        True,
        True,
    )
    assert (by_symbol.min_order_size, by_symbol.min_trade_increment) == (1e-08, 1e-08)
    doge = everything[1]
    assert (doge.status, doge.tradable, doge.min_trade_increment) == (AssetStatus.INACTIVE, False, 0.01)
    assert by_symbol.id == asset_uuid("BTC") != doge.id


def test_an_unknown_asset_is_404(trading, btc):
    with pytest.raises(APIError) as raised:
        trading.get_asset("NOPE/USD")
    assert (raised.value.status_code, raised.value.code) == (404, 40410000)


def test_the_crypto_clock_is_always_open(trading):
    # when
    clock = trading.get_clock()

    # then
    assert clock.is_open is True
    assert clock.next_open == clock.next_close
    assert clock.next_close > clock.timestamp
    assert (clock.next_close.hour, clock.next_close.minute) == (0, 0)


def test_activities_show_fills_deposits_and_withdrawals(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    order = trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.01, side="buy", time_in_force="gtc"))
    deposit(user=user, amount=Decimal("250.00"))
    withdraw(user=user, amount=Decimal("100.00"))

    # when
    everything = trading.get("/account/activities")
    fills = trading.get("/account/activities/FILL")
    deposits = trading.get("/account/activities", {"activity_types": "CSD"})

    # then
    assert [a["activity_type"] for a in everything] == ["CSW", "CSD", "FILL", "CSD"]
    fill = TradeActivity(**fills[0])
    assert len(fills) == 1
    assert (fill.order_id, fill.symbol, fill.qty, fill.price, fill.side.value) == (
        order.id,
        "BTC/USD",
        0.01,
        50000.0,
        "buy",
    )
    assert [NonTradeActivity(**a).net_amount for a in deposits] == [250.0, 10000.0]
    assert NonTradeActivity(**everything[0]).net_amount == -100.0


def test_activities_page_with_page_token_and_direction(trading, user):
    # given: the opening deposit and three more
    for amount in ("1.00", "2.00", "3.00"):
        deposit(user=user, amount=Decimal(amount))

    # when
    first = trading.get("/account/activities", {"page_size": 2})
    second = trading.get("/account/activities", {"page_size": 2, "page_token": first[-1]["id"]})
    oldest_first = trading.get("/account/activities", {"direction": "asc"})

    # then
    assert [a["net_amount"] for a in first] == ["3.00", "2.00"]
    assert [a["net_amount"] for a in second] == ["1.00", "10000.00"]
    assert [a["net_amount"] for a in oldest_first] == ["10000.00", "1.00", "2.00", "3.00"]


def test_activities_of_one_day(trading, user):
    # when
    today = trading.get("/account/activities", {"date": datetime.now(UTC).date().isoformat()})
    long_ago = trading.get("/account/activities", {"date": "2001-01-01"})

    # then
    assert [a["activity_type"] for a in today] == ["CSD"]
    assert long_ago == []


def test_portfolio_history_is_the_ledgers_valued_at_the_recorded_prices(make_user, btc, set_price, live_server):
    # given: at 12:30 a new user (10,000.00) buys 0.1 BTC at 50,000; BTC is recorded at 55,000 at 12:40
    from alpaca.trading.client import TradingClient

    from accounts.services import create_api_key
    from assets.models import PriceRecord

    at = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    with time_machine.travel(at, tick=False):
        trader = make_user("hodler")
        key = create_api_key(user=trader, name="hodler's bot")
        trading = TradingClient(key.api_key.key_id, key.secret_key, paper=True, url_override=live_server.url)
        set_price("BTC", "50000")
        trading.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc"))
    later = datetime(2026, 3, 2, 12, 40, tzinfo=UTC)
    PriceRecord.objects.create(asset=btc, price=Decimal("55000"), as_of=later, source="test", slot=later)

    # when
    with time_machine.travel(datetime(2026, 3, 2, 12, 50, tzinfo=UTC), tick=False):
        history = trading.get_portfolio_history(GetPortfolioHistoryRequest(period="1D", timeframe="1H"))

    # then: the history starts when the account did, in the 12:00 bucket, from its opening
    # 10,000.00; at 12:00's close cash 5,000 + 0.1 x 55,000
    assert history.timeframe == "1H"
    assert history.timestamp == [int(datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp())]
    assert history.equity == [10500.0]
    assert history.profit_loss == [500.0]
    assert history.profit_loss_pct == [0.05]
    assert history.base_value == 10000.0
