"""A Redis that dies or freezes never fails a request (docs/DESIGN.md, "Faults").

Each test starts its own ``redis-server`` on a free port (tests/support/processes.py), kills it
with SIGKILL or freezes it with SIGSTOP mid-test, and brings it back. The cache settings are
the project's own: what ``portfolio_project/settings.py`` builds from ``CACHE_URL``, read in a
fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.core.cache import cache

import core.cache
from assets.price_providers import SIMULATED_BUCKET_SECONDS, SimulatedProvider
from assets.prices import get_quotes, get_trade_quote
from tests.support.process_state import forget_outages
from tests.support.processes import ROOT, OwnRedis

SOCKET_TIMEOUT = 0.25  # the default CACHE_SOCKET_TIMEOUT

PRINT_CACHES = (
    "import json, django; django.setup(); from django.conf import settings; print(json.dumps(settings.CACHES))"
)


def project_caches(cache_url: str) -> dict:
    env = {**os.environ, "CACHE_URL": cache_url, "DJANGO_SETTINGS_MODULE": "portfolio_project.settings"}
    result = subprocess.run(
        [sys.executable, "-c", PRINT_CACHES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def redis():
    server = OwnRedis().start()
    yield server
    server.stop()


@pytest.fixture
def redis_cache(redis, settings):
    """The project's cache settings for CACHE_URL=<our Redis>, in this process."""
    settings.CACHES = project_caches(redis.url)
    forget_outages()
    cache.clear()
    yield redis
    forget_outages()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_redis_cache_url_gets_the_fail_open_backend_with_short_timeouts(redis):
    # when
    caches = project_caches(redis.url)

    # then
    assert caches == {
        "default": {
            "BACKEND": "core.cache.FailOpenRedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25, "IGNORE_EXCEPTIONS": True},
        }
    }


def test_killed_redis_answers_every_call_with_its_default_at_once(redis_cache):
    # given
    cache.set("k", 1)
    assert cache.get("k") == 1
    redis_cache.kill()

    # when
    answers, seconds = timed(
        lambda: [
            cache.get("k", "default"),
            cache.get_many(["k", "j"]),
            cache.set("k", 2),
            cache.add("k", 2),
            cache.incr("k"),
            cache.set_many({"k": 3}),
            cache.delete("k"),
        ]
    )

    # then: connection refused is immediate; nothing raised
    assert answers == ["default", {}, None, None, None, None, None]
    assert seconds < 0.1
    assert cache.outage()["error"].startswith("ConnectionError")


def test_frozen_redis_costs_one_socket_timeout_then_nothing_until_the_retry(redis_cache):
    # given
    cache.set("k", 1)
    redis_cache.freeze()

    # when
    first, first_seconds = timed(lambda: cache.get("k", "default"))
    rest, rest_seconds = timed(lambda: [cache.get("k", "default") for _ in range(100)])

    # then
    assert first == "default"
    assert SOCKET_TIMEOUT <= first_seconds < SOCKET_TIMEOUT + 0.15
    assert rest == ["default"] * 100
    assert rest_seconds < 0.05
    assert cache.outage()["error"].startswith("TimeoutError")


def test_cache_recovers_after_a_thaw_once_the_retry_time_has_passed(redis_cache):
    # given
    cache.set("k", 1)
    redis_cache.freeze()
    cache.get("k")
    redis_cache.thaw()

    # when
    during = cache.get("k", "skipped")
    time.sleep(core.cache.OUTAGE_RETRY_SECONDS)
    after = cache.get("k")

    # then
    assert during == "skipped"
    assert after == 1
    assert cache.outage() is None


def test_cache_recovers_after_a_restart_of_a_killed_redis(redis_cache):
    # given
    redis_cache.kill()
    cache.set("k", 1)
    redis_cache.start()
    time.sleep(core.cache.OUTAGE_RETRY_SECONDS)

    # when
    cache.set("k", 2)
    value = cache.get("k")

    # then
    assert value == 2
    assert cache.outage() is None


def test_prices_do_not_need_the_cache_and_trading_goes_on_without_it(redis_cache, settings, btc):
    # given: the simulated market, and no Redis
    settings.PRICE_PROVIDER = "simulated"
    redis_cache.kill()

    # when
    quotes, seconds = timed(lambda: get_quotes([btc]))
    quote = get_trade_quote(btc)

    # then: the simulated market's price of that instant
    assert quotes["BTC"].stale is False
    assert quote.price == quotes["BTC"].price
    bucket = int(quote.as_of.timestamp()) // SIMULATED_BUCKET_SECONDS
    assert quote.price == SimulatedProvider().price_at(btc, bucket)
    assert seconds < 0.1


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_health_is_503_degraded_with_the_cache_state_and_recovers(redis_cache, api_client, db, fault):
    # given
    assert api_client.get("/api/v1/health/").status_code == 200
    getattr(redis_cache, fault)()

    # when
    down, down_seconds = timed(lambda: api_client.get("/api/v1/health/"))
    if fault == "kill":
        redis_cache.start()
    else:
        redis_cache.thaw()
    time.sleep(core.cache.OUTAGE_RETRY_SECONDS)
    up = api_client.get("/api/v1/health/")

    # then
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["cache"]["ok"] is False
    assert body["cache"]["error"].startswith("TimeoutError" if fault == "freeze" else "ConnectionError")
    assert down_seconds < SOCKET_TIMEOUT + 0.2
    assert up.status_code == 200
    assert up.json()["cache"] == {"ok": True}
