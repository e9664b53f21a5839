"""Crypto market data through alpaca-py's CryptoHistoricalDataClient."""

from __future__ import annotations

from alpaca.data.requests import CryptoLatestQuoteRequest, CryptoLatestTradeRequest


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
