"""The service as production runs it (gunicorn, CACHE_URL at a Redis of our own) while that
Redis is killed or frozen: every request answered, none a 500, within a bounded time."""

from __future__ import annotations

import time

import pytest
import requests

import core.cache
from orders.models import Order
from orders.selectors import reconcile_ledger
from tests.faults.servers import AppServer
from tests.support.processes import OwnRedis

SOCKET_TIMEOUT = 0.25  # the default CACHE_SOCKET_TIMEOUT


@pytest.fixture
def redis():
    server = OwnRedis().start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_service_under_a_dead_or_frozen_redis_answers_every_request_without_a_500(redis, user, btc, fault):
    # given: gunicorn with CACHE_URL at our Redis, and a user with a token
    app = AppServer(CACHE_URL=redis.url, PRICE_PROVIDER="simulated").start(workers=2)
    try:
        headers = {"Authorization": f"Token {app.token(user)}"}
        assert requests.get(f"{app.url}/api/v1/balance/", headers=headers, timeout=10).status_code == 200
        getattr(redis, fault)()

        # when: two seconds of traffic, across each worker's retry of Redis
        answers: list[tuple[str, int, float]] = []
        until = time.monotonic() + 2
        while time.monotonic() < until:
            for method, path, body in [
                ("GET", "/api/v1/balance/", None),
                ("GET", "/api/v1/portfolio/", None),
                ("POST", "/api/v1/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}),
                ("GET", "/api/v1/health/", None),
            ]:
                started = time.monotonic()
                response = requests.request(method, f"{app.url}{path}", headers=headers, json=body, timeout=10)
                answers.append((path, response.status_code, time.monotonic() - started))
        health = requests.get(f"{app.url}/api/v1/health/", timeout=10).json()
        if fault == "kill":
            redis.start()
        else:
            redis.thaw()
        time.sleep(core.cache.OUTAGE_RETRY_SECONDS + 0.1)
        recovered = [requests.get(f"{app.url}/api/v1/health/", timeout=10) for _ in range(4)]
        log = app.log_text()
    finally:
        app.stop()

    # then
    statuses = {(path, status) for path, status, _ in answers}
    slowest = max(seconds for _, _, seconds in answers)
    print(f"\n{fault}: {len(answers)} requests, slowest {slowest:.3f} s, answers {sorted(statuses)}")
    assert statuses == {
        ("/api/v1/balance/", 200),
        ("/api/v1/portfolio/", 200),
        ("/api/v1/orders/", 201),
        ("/api/v1/health/", 503),
    }
    assert slowest < SOCKET_TIMEOUT * 3 + 0.2
    assert health["status"] == "degraded"
    assert health["cache"]["ok"] is False
    assert {r.status_code for r in recovered} == {200}
    assert "Traceback" not in log
    orders = sum(1 for path, _, _ in answers if path == "/api/v1/orders/")
    assert Order.objects.filter(user=user, status=Order.Status.COMPLETED).count() == orders
    assert reconcile_ledger() == []
