"""process_orders under its cache's outages (Redis killed, then frozen): it logs, backs off
and carries on, and fills what the market crossed once it can. (What requests do while
Redis is away: tests/faults/test_cache_service.py and test_cache_faults.py.)"""

from __future__ import annotations

import time

import pytest
import requests

from tests.faults.conftest import assert_ledger_reconciles, pending_crossed_at
from tests.support.processes import OwnRedis, wait_for


def resting_buy(system, limit: str) -> str:
    username = f"proc-{time.monotonic_ns()}"
    token = requests.post(
        f"{system.url}/auth/register/", json={"username": username, "password": "a-long-passphrase-42"}, timeout=30
    ).json()["token"]
    response = requests.post(
        f"{system.url}/orders/",
        json={"asset_id": "BTC", "order_type": "BUY", "quantity": "0.001", "order_price": limit},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "PENDING"
    return response.json()["order_id"]


def status_of(system, order_id: str) -> str:
    [(status,)] = system.sql("SELECT status FROM orders_order WHERE order_id = %s", order_id)
    return status


@pytest.mark.parametrize(
    ("outage", "recovery"),
    [
        pytest.param(OwnRedis.kill, OwnRedis.start, id="killed-then-started"),
        pytest.param(OwnRedis.freeze, OwnRedis.thaw, id="frozen-then-thawed"),
    ],
)
def test_the_processor_outlives_a_redis_outage_and_fills_once_it_is_back(healthy_system, outage, recovery):
    # given: a resting BUY at 40000 and a running processor
    system = healthy_system
    processor_pid = system.processor.pid
    order_id = resting_buy(system, "40000")

    # when: Redis is killed (SIGKILL) or frozen (SIGSTOP), the market crosses the order, and
    # Redis is back three seconds later
    outage(system.redis)
    system.set_market(btc="39999")
    try:
        time.sleep(3)
        alive_during_the_outage = system.processor.poll() is None
        recovery(system.redis)
        wait_for(lambda: status_of(system, order_id) == "COMPLETED", timeout=15, interval=0.2, what="the fill")
    finally:
        system.redis.thaw()  # never leave it stopped (a no-op on a killed or running one)
        system.set_market()

    # then: the same process filled it
    assert alive_during_the_outage, system.processor_log.read_text()
    assert system.processor.pid == processor_pid
    assert system.processor.poll() is None
    assert pending_crossed_at(system, "39999") == 0
    assert_ledger_reconciles(system)
