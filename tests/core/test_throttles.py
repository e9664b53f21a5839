"""The fixed-window throttles: rate-limit headers on every answer they count, one cache write
per request, and failing open when the cache (Redis) fails (docs/DESIGN.md, "Faults")."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.support.api import error_code

BALANCE = "/api/v1/balance/"
WINDOW_END = 1_800_000_060  # the frozen clock is 1_800_000_030: half a minute into its window


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_throttled_answers_carry_rate_limit_headers_and_a_429_says_when_to_retry(auth_client, throttle_rates):
    # given 2 requests a minute per user
    throttle_rates(user="2/min")

    # when
    first, second, third = (auth_client.get(BALANCE) for _ in range(3))

    # then each answer says the limit, what is left and when the window turns (epoch seconds)
    assert [(r.status_code, r["X-RateLimit-Limit"], r["X-RateLimit-Remaining"]) for r in (first, second, third)] == [
        (200, "2", "1"),
        (200, "2", "0"),
        (429, "2", "0"),
    ]
    assert {r["X-RateLimit-Reset"] for r in (first, second, third)} == {str(WINDOW_END)}
    assert error_code(third) == "throttled"
    assert third["Retry-After"] == "30"


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_the_tightest_of_two_throttles_is_the_one_shown(auth_client, btc, throttle_rates):
    # given orders allow 5 a minute, everything 100
    throttle_rates(user="100/min", orders="5/min")

    # when an order is placed (it fails for want of a price: it still counts)
    response = auth_client.post("/api/v1/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "1"})

    # then the order throttle's numbers are shown
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("5", "4")


def test_an_answer_no_throttle_counted_has_no_rate_limit_headers(api_client, db):
    response = api_client.get("/api/v1/health/")
    assert "X-RateLimit-Limit" not in response


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_login_answers_show_the_login_allowance(user, throttle_rates):
    # given
    throttle_rates(auth="20/min", login_username="10/min")

    # when
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "x"}, format="json")

    # then the tighter of the address's and the username's
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("10", "9")


# --- Against a real Redis of our own ------------------------------------------------------------


def _use_redis(settings, url: str, *, ignore_exceptions: bool, backend: str = "django_redis.cache.RedisCache") -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": backend,
            "LOCATION": url,
            "OPTIONS": {"IGNORE_EXCEPTIONS": ignore_exceptions, "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }


def _commands_run(client) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name: stat["calls"] for name, stat in stats.items() if name not in ("cmdstat_info", "cmdstat_config|resetstat")
    }


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_a_request_costs_one_cache_command_once_its_window_started(auth_client, own_redis, settings, throttle_rates):
    # given the throttle counts in our own Redis, and the window was started by a request
    server, client = own_redis
    _use_redis(settings, server.url, ignore_exceptions=False)
    throttle_rates(user="100/min")
    assert auth_client.get(BALANCE).status_code == 200
    client.config_resetstat()

    # when 5 more requests come
    responses = [auth_client.get(BALANCE) for _ in range(5)]

    # then each sent one command, the counters' script (whose INCR Redis counts as well), and
    # counted right
    assert _commands_run(client) == {"cmdstat_evalsha": 5, "cmdstat_incr": 5}
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["98", "97", "96", "95", "94"]


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_an_order_counts_against_both_its_throttles_in_one_round_trip(
    auth_client, btc_at_50k, own_redis, settings, throttle_rates
):
    # given both windows started
    server, client = own_redis
    _use_redis(settings, server.url, ignore_exceptions=False)
    throttle_rates(user="100/min", orders="3/min")
    order = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.001"}
    assert auth_client.post("/api/v1/orders/", order).status_code == 201
    client.config_resetstat()

    # when three more orders come, the last one over the order rate
    answers = [auth_client.post("/api/v1/orders/", order) for _ in range(3)]

    # then each counted two windows in one command (the price reads are the other commands),
    # and the order window decided
    commands = _commands_run(client)
    assert (commands["cmdstat_evalsha"], commands["cmdstat_incr"]) == (3, 6)
    assert set(commands) <= {"cmdstat_evalsha", "cmdstat_incr", "cmdstat_mget", "cmdstat_get"}
    assert [(r.status_code, r["X-RateLimit-Limit"], r["X-RateLimit-Remaining"]) for r in answers] == [
        (201, "3", "1"),
        (201, "3", "0"),
        (429, "3", "0"),
    ]
    assert answers[-1]["Retry-After"] == "30"
    assert client.ttl(next(iter(client.scan_iter("*orders*")))) in range(30, 62)


@pytest.mark.parametrize(
    ("backend", "ignore_exceptions"),
    [
        ("django_redis.cache.RedisCache", False),
        ("django_redis.cache.RedisCache", True),
        ("core.cache.FailOpenRedisCache", True),
    ],
    ids=["cache-raises", "cache-returns-none", "production-cache"],
)
@pytest.mark.usefixtures("throttle_clock_frozen")
def test_throttles_fail_open_when_redis_dies(
    user, auth_client, own_redis, settings, throttle_rates, backend, ignore_exceptions
):
    # given throttles counting in our own Redis, tight enough to matter
    server, _client = own_redis
    _use_redis(settings, server.url, ignore_exceptions=ignore_exceptions, backend=backend)
    throttle_rates(user="3/min", auth="3/min", login_username="3/min", register="3/hour")
    assert auth_client.get(BALANCE).status_code == 200

    # when Redis is killed
    server.stop()
    balances = [auth_client.get(BALANCE) for _ in range(5)]
    logins = [
        APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "x"}, format="json") for _ in range(5)
    ]
    good_login = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "correct-horse-battery"}, format="json"
    )
    registered = APIClient().post(
        "/api/v1/auth/register/", {"username": "carol", "password": "a-long-passphrase-42"}, format="json"
    )

    # then every request is answered as if no throttle were there: no 429, no 500, and no
    # rate-limit numbers that nobody counted
    assert [r.status_code for r in balances] == [200] * 5
    assert [r.status_code for r in logins] == [401] * 5
    assert good_login.status_code == 200
    assert registered.status_code == 201
    assert "X-RateLimit-Remaining" not in balances[-1]


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_admin_login_fails_open_when_redis_dies(make_user, own_redis, settings, throttle_rates):
    # given
    from django.test import Client

    make_user("alice", is_staff=True)
    server, _client = own_redis
    _use_redis(settings, server.url, ignore_exceptions=False)
    throttle_rates(auth="1/min", login_username="1/min")
    server.stop()

    # when
    wrong = [Client().post("/admin/login/", {"username": "alice", "password": "x"}) for _ in range(3)]
    right = Client().post("/admin/login/", {"username": "alice", "password": "correct-horse-battery"})

    # then
    assert [r.status_code for r in wrong] == [200] * 3
    assert right.status_code == 302
