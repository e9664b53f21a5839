"""Prices seen through several server processes, as production runs them (gunicorn, no
CACHE_URL: each process has a cache of its own in local memory), against the real local
CoinGecko: no process serves a price older than one another process already served, because
every process reads the last good price from PostgreSQL (issue 21)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests

from tests.faults.servers import AppServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider(coingecko_http_server):
    coingecko_http_server.reset()
    yield coingecko_http_server
    coingecko_http_server.reset()


@pytest.fixture
def two_servers(provider):
    """Two gunicorn instances of one worker each on the test database, each with its own
    local-memory cache, asking the provider again after 2 s."""
    env = {
        "PRICE_PROVIDER": "coingecko",
        "COINGECKO_API_URL": provider.url,
        "CACHE_URL": "locmemcache://portfolio",
        "PRICE_CACHE_SECONDS": "2",
    }
    servers = []
    try:
        for _ in range(2):
            servers.append(AppServer(**env).start(workers=1))
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_a_server_process_never_serves_a_price_older_than_another_one_served(provider, two_servers, user, btc):
    # given
    first, second = two_servers
    headers = {"Authorization": f"Token {first.token(user)}"}
    now = int(time.time())
    provider.set_price("bitcoin", "67000", updated_at=now - 10)
    served: list[tuple[str, datetime, str]] = []

    def show(name: str, server: AppServer) -> None:
        body = requests.get(f"{server.url}/api/v1/assets/BTC/", headers=headers, timeout=10).json()
        served.append((name, datetime.fromisoformat(body["price_as_of"]), body["current_price"]))

    # when: the first process prices BTC; the provider moves on; each process shows BTC, twice
    # (before, the second fetched the newer price into its own cache and the first then
    # served its older one: price_as_of went backwards)
    show("first", first)
    provider.set_price("bitcoin", "67100", updated_at=now - 5)
    show("second", second)
    show("first", first)
    time.sleep(2.1)  # past PRICE_CACHE_SECONDS: the next request asks the provider again
    show("second", second)
    show("first", first)

    # then: never older than what was served before it, and both end on the newer price
    older, newer = datetime.fromtimestamp(now - 10, tz=UTC), datetime.fromtimestamp(now - 5, tz=UTC)
    assert served == [
        ("first", older, "67000"),
        ("second", older, "67000"),
        ("first", older, "67000"),
        ("second", newer, "67100"),
        ("first", newer, "67100"),
    ]
