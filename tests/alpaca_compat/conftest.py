"""Fixtures of the Alpaca-compatible API tests: alpaca-py's own clients against a live server.

The server is pytest-django's ``live_server`` (a real HTTP server in a thread of this process,
on the test database), so the SDK's requests, headers, JSON and error parsing are the real
ones, and the test reads the database and the ledgers the server wrote.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from alpaca.data.historical import CryptoHistoricalDataClient
from alpaca.trading.client import TradingClient
from django.utils import timezone
from rest_framework.authtoken.models import Token

from assets.prices import Quote, store_quotes
from orders.selectors import reconcile_ledger


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def set_price(settings):
    """``set_price("BTC", "50000")``: the market price every trade sees until changed (the
    server thread shares this process's price cache)."""
    settings.PRICE_CACHE_SECONDS = 3600

    def set_(asset_id: str, price: str, *, as_of: datetime | None = None) -> Quote:
        quote = Quote(asset_id=asset_id, price=Decimal(price), as_of=as_of or timezone.now(), source="test")
        store_quotes([quote])
        return quote

    return set_


@pytest.fixture
def credentials(user):
    """The key id and secret a program passes to alpaca-py."""
    token, _ = Token.objects.get_or_create(user=user)
    return user.username, token.key


@pytest.fixture
def trading(live_server, credentials) -> TradingClient:
    key_id, secret = credentials
    return TradingClient(key_id, secret, paper=True, url_override=live_server.url)


@pytest.fixture
def market_data(live_server, credentials) -> CryptoHistoricalDataClient:
    key_id, secret = credentials
    return CryptoHistoricalDataClient(key_id, secret, url_override=live_server.url)


@pytest.fixture
def ledger_reconciles():
    """Call after money moved: every balance is explained by its ledger."""

    def check() -> None:
        assert [str(m) for m in reconcile_ledger()] == []

    return check
