"""Alpaca's paths: /v2/ (trading) and /v1beta3/crypto/us/ (market data), mounted by
portfolio_project/urls.py. No trailing slashes, as Alpaca's; symbols may hold one (BTC/USD)."""

from django.urls import path, re_path

from alpaca_compat import market_data, trading
from alpaca_compat.errors import endpoint_not_found

SYMBOL = r"(?P<symbol>[^/]+(?:/[^/]+)?)"

trading_urls = [
    path("account", trading.AccountView.as_view()),
    path("account/portfolio/history", trading.PortfolioHistoryView.as_view()),
    path("account/activities", trading.ActivitiesView.as_view()),
    path("account/activities/<str:activity_type>", trading.ActivitiesView.as_view()),
    path("orders", trading.OrdersView.as_view()),
    path("orders:by_client_order_id", trading.OrderByClientIdView.as_view()),
    path("orders/<str:order_id>", trading.OrderView.as_view()),
    path("positions", trading.PositionsView.as_view()),
    re_path(rf"^positions/{SYMBOL}$", trading.PositionView.as_view()),
    path("assets", trading.AssetsView.as_view()),
    re_path(rf"^assets/{SYMBOL}$", trading.AssetView.as_view()),
    path("clock", trading.ClockView.as_view()),
    re_path(r"", endpoint_not_found),
]

market_data_urls = [
    path("latest/quotes", market_data.LatestQuotesView.as_view()),
    path("latest/trades", market_data.LatestTradesView.as_view()),
    path("latest/bars", market_data.LatestBarsView.as_view()),
    path("bars", market_data.BarsView.as_view()),
    path("snapshots", market_data.SnapshotsView.as_view()),
    re_path(r"", endpoint_not_found),
]
