"""``GET /api/v1/health/`` never calls the price provider, and says what it last learned."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from tests.support.price_server import UNASKED_STATUS

HEALTH = "/api/v1/health/"
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_health_is_ok_with_database_cache_and_a_provider_never_asked(api_client, coingecko_server, btc):
    # when
    response = api_client.get(HEALTH)

    # then
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": {"ok": True},
        "price_provider": UNASKED_STATUS,
    }
    assert coingecko_server.request_count == 0


def test_anonymous_health_checks_never_call_the_provider_even_while_it_is_down(
    api_client, coingecko_server, settings, btc, auth_client
):
    # given: the provider failed three times for a request that needed a price
    settings.COINGECKO_RETRIES = 0
    coingecko_server.fail_next(503, times=3)
    with time_machine.travel(T0, tick=False):
        for _ in range(3):
            auth_client.get("/api/v1/assets/BTC/")
    asked = coingecko_server.request_count

    # when
    answers = [api_client.get(HEALTH) for _ in range(20)]

    # then: degraded but serving (every instance shares the provider), and no upstream call
    assert asked == 3
    assert coingecko_server.request_count == 3
    assert {a.status_code for a in answers} == {200}
    body = answers[-1].json()
    assert body["status"] == "degraded"
    assert body["price_provider"] == {
        "provider": "coingecko",
        "ok": False,
        "breaker": "open",
        "consecutive_failures": 3,
        "last_success_at": None,
        "last_failure_at": T0.isoformat(),
        "last_error": "CoinGecko answered HTTP 503 1 time(s).",
    }
