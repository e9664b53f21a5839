"""The streams' paths, on the API's port (portfolio_project/asgi.py): trade updates where
alpaca-py (``/stream``) and alpaca-trade-api (``/stream/``, derived from the base URL) look
for them, crypto market data where alpaca-py (``/v1beta3/crypto/us``) and alpaca-trade-api and
CCXT (``/v1beta2/crypto``) do."""

from django.urls import re_path

from alpaca_compat.streams.consumers import MarketDataConsumer, NoSuchStream, TradeUpdatesConsumer

trade_updates = TradeUpdatesConsumer.as_asgi()
market_data = MarketDataConsumer.as_asgi()

websocket_urls = [
    re_path(r"^stream/?$", trade_updates),
    re_path(r"^v1beta3/crypto/us/?$", market_data),
    re_path(r"^v1beta2/crypto/?$", market_data),
    re_path(r"", NoSuchStream.as_asgi()),
]
