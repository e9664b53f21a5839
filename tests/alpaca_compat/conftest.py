"""Fixtures of the Alpaca-compatible API tests: alpaca-py's own clients against a live server.

The server is pytest-django's ``live_server`` (a real HTTP server in a thread of this process,
on the test database), so the SDK's requests, headers, JSON and error parsing are the real
ones, and the test reads the database and the ledgers the server wrote.
"""

from __future__ import annotations

import pytest
from alpaca.data.historical import CryptoHistoricalDataClient
from alpaca.trading.client import TradingClient

from accounts.services import create_api_key
from orders.selectors import reconcile_ledger


@pytest.fixture
def credentials(user):
    """The key id and secret a program passes to alpaca-py: an API key of ``user``."""
    new = create_api_key(user=user, name="test bot")
    return new.api_key.key_id, new.secret_key


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
