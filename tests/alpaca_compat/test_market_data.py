"""Crypto market data through alpaca-py's CryptoHistoricalDataClient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestBarRequest,
    CryptoLatestQuoteRequest,
    CryptoLatestTradeRequest,
    CryptoSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from tests.support.price_records import T0, record


def test_latest_quotes_and_trades_are_the_last_price(market_data, btc, eth, set_price):
    # given
    btc_quote = set_price("BTC", "50000.25")
    set_price("ETH", "2500")

    # when
    quotes = market_data.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols=["BTC/USD", "ETH/USD"]))
    trades = market_data.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols="BTC/USD"))

    # then
    assert set(quotes) == {"BTC/USD", "ETH/USD"}
    assert (quotes["BTC/USD"].bid_price, quotes["BTC/USD"].ask_price) == (50000.25, 50000.25)
    assert quotes["BTC/USD"].timestamp == btc_quote.as_of
    assert quotes["ETH/USD"].ask_price == 2500.0
    assert (trades["BTC/USD"].price, trades["BTC/USD"].size) == (50000.25, 0.0)


def test_market_data_needs_no_key(live_server, btc, set_price):
    # given
    from alpaca.data.historical import CryptoHistoricalDataClient

    set_price("BTC", "50000")
    anonymous = CryptoHistoricalDataClient(url_override=live_server.url)

    # when
    quotes = anonymous.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols="BTC/USD"))

    # then
    assert quotes["BTC/USD"].bid_price == 50000.0


def test_bars_over_a_range_are_ohlc_of_the_recorded_prices(market_data, btc_minutes):
    # when
    bars = market_data.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols="BTC/USD",
            timeframe=TimeFrame(5, TimeFrameUnit.Minute),
            start=T0,
            end=T0 + timedelta(minutes=10),
        )
    )

    # then: 12:00-12:05 and 12:05-12:10; 12:10 is outside the end
    assert [(b.timestamp, b.open, b.high, b.low, b.close, b.trade_count, b.volume) for b in bars["BTC/USD"]] == [
        (T0, 100.0, 103.0, 99.0, 101.0, 4, 0.0),
        (T0 + timedelta(minutes=5), 110.0, 110.0, 108.0, 108.0, 2, 0.0),
    ]
    assert bars["BTC/USD"][0].vwap == pytest.approx((103 + 99 + 101) / 3)


def test_bars_page_with_next_page_token_and_the_sdk_follows_it(market_data, btc_minutes):
    # when: one bar a page, by hand; then the SDK's own paging
    first = market_data.get(
        "/crypto/us/bars",
        {"symbols": "BTC/USD", "timeframe": "1Min", "start": T0.isoformat(), "end": "2026-03-02T12:04:00Z", "limit": 3},
    )
    second = market_data.get(
        "/crypto/us/bars",
        {
            "symbols": "BTC/USD",
            "timeframe": "1Min",
            "start": T0.isoformat(),
            "end": "2026-03-02T12:04:00Z",
            "limit": 3,
            "page_token": first["next_page_token"],
        },
    )
    everything = market_data.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Minute, start=T0, end=T0 + timedelta(hours=1)
        )
    )

    # then
    assert [bar["c"] for bar in first["bars"]["BTC/USD"]] == [100.0, 103.0, 99.0]
    assert [bar["c"] for bar in second["bars"]["BTC/USD"]] == [101.0]
    assert second["next_page_token"] is None
    assert len(everything["BTC/USD"]) == 7


def test_latest_bar_is_the_minute_of_the_last_recorded_price(market_data, btc_minutes):
    # when
    latest = market_data.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols="BTC/USD"))

    # then
    bar = latest["BTC/USD"]
    assert (bar.timestamp, bar.open, bar.close, bar.trade_count) == (T0 + timedelta(minutes=10), 107.5, 107.5, 1)


def test_snapshot_has_last_trade_quote_minute_and_daily_bars(market_data, btc_minutes, set_price):
    # given: yesterday's close, and the current price
    record(btc_minutes, "90", T0 - timedelta(hours=13))
    set_price("BTC", "107.5", as_of=T0 + timedelta(minutes=10))

    # when
    snapshot = market_data.get_crypto_snapshot(CryptoSnapshotRequest(symbol_or_symbols="BTC/USD"))["BTC/USD"]

    # then
    assert (snapshot.latest_trade.price, snapshot.latest_quote.bid_price) == (107.5, 107.5)
    assert (snapshot.minute_bar.timestamp, snapshot.minute_bar.close) == (T0 + timedelta(minutes=10), 107.5)
    daily = snapshot.daily_bar
    assert (daily.timestamp, daily.open, daily.high, daily.low, daily.close, daily.trade_count) == (
        datetime(2026, 3, 2, tzinfo=UTC),
        100.0,
        110.0,
        99.0,
        107.5,
        7,
    )
    assert (snapshot.previous_daily_bar.close, snapshot.previous_daily_bar.trade_count) == (90.0, 1)


def test_latest_quotes_and_snapshots_show_the_deployments_spread(market_data, btc, set_price, settings):
    # given a 10 bps spread for the deployment
    settings.FILL_SPREAD_BPS = Decimal("10")
    set_price("BTC", "50000")

    # when
    quote = market_data.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols="BTC/USD"))["BTC/USD"]
    snapshot = market_data.get_crypto_snapshot(CryptoSnapshotRequest(symbol_or_symbols="BTC/USD"))["BTC/USD"]

    # then: half the spread either side of the price
    assert (quote.bid_price, quote.ask_price) == (49975.0, 50025.0)
    assert (snapshot.latest_quote.bid_price, snapshot.latest_quote.ask_price) == (49975.0, 50025.0)
