"""Redis killed and frozen under a load of orders, the whole system running: the cache fails
open (prices are fetched, throttles let requests through), so orders keep being placed with
no 500 and no 503, nothing is lost or doubled, and the ledger reconciles. (The cache's own
timeouts and health report are tested in tests/assets/ and tests/core/.)"""

from __future__ import annotations

import time

from tests.faults.conftest import Load, assert_ledger_reconciles, assert_nothing_lost_or_doubled
from tests.faults.test_database_faults import assert_the_processor_survived_and_fills
from tests.support.processes import wait_for


def test_a_killed_redis_under_load_fails_open_and_loses_nothing(healthy_system):
    # given
    system = healthy_system

    # when: Redis dies for three seconds under load, then comes back empty
    with Load(system) as load:
        wait_for(lambda: load.statuses()[201] >= 8, timeout=30, what="the load to place orders")
        system.redis.kill()
        placed_before = load.statuses()[201]
        try:
            wait_for(lambda: load.statuses()[201] >= placed_before + 4, timeout=10, what="orders placed without Redis")
        except AssertionError:
            from collections import Counter

            raise AssertionError(Counter((a.status, a.code) for a in load.answers())) from None
        time.sleep(3)
        system.redis.start()
        time.sleep(1)

    # then: no 5xx at all
    statuses = load.statuses()
    assert set(statuses) <= {200, 201, 422}, statuses
    assert_nothing_lost_or_doubled(system, load)
    assert_the_processor_survived_and_fills(system)
    assert_ledger_reconciles(system)


def test_a_frozen_redis_under_load_delays_answers_briefly_and_fails_none(healthy_system):
    # given
    system = healthy_system

    # when: Redis is frozen (SIGSTOP) for four seconds under load
    with Load(system) as load:
        wait_for(lambda: load.statuses()[201] >= 8, timeout=30, what="the load to place orders")
        began = time.monotonic()
        system.redis.freeze()
        try:
            time.sleep(4)
        finally:
            system.redis.thaw()
        ended = time.monotonic()
        time.sleep(1)

    # then: no 5xx, and no answer waited for the thaw
    statuses = load.statuses()
    assert set(statuses) <= {200, 201, 422}, statuses
    during = [a for a in load.answers() if a.sent >= began and a.sent < ended - 3]
    assert during, "no request was sent while Redis was frozen"
    assert max(a.received - a.sent for a in during) < 3, sorted(a.received - a.sent for a in during)
    assert_nothing_lost_or_doubled(system, load)
    assert_the_processor_survived_and_fills(system)
    assert_ledger_reconciles(system)
