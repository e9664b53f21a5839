"""PostgreSQL restarted, crashed, stopped and frozen under a load of orders: the API answers
503 ``service_unavailable`` only while the database is away (never a 500), clients that
retry with their client_order_id lose nothing and double nothing, process_orders lives
through it all and fills what the market crosses, and the ledger reconciles."""

from __future__ import annotations

import time

import requests

from tests.faults.conftest import (
    Load,
    assert_ledger_reconciles,
    assert_nothing_lost_or_doubled,
    pending_crossed_at,
)
from tests.support.processes import wait_for

# How long after the database is back a 503 may still be answered: a request that was
# already failing when it returned.
GRACE_SECONDS = 2.0
# How long the API may take to place orders again once the database is back.
RECOVERY_SECONDS = 5.0


def run_under_load(system, fault) -> tuple[Load, float, float]:
    """Apply ``fault`` (which returns once the database is back) under load; the load and
    the outage window in monotonic seconds."""
    with Load(system) as load:
        wait_for(lambda: load.statuses()[201] >= 8, timeout=30, what="the load to place orders")
        began = time.monotonic()
        fault()
        wait_for(system.pg.is_ready, timeout=30, what="PostgreSQL to be back")
        ended = time.monotonic()
        placed_before = load.statuses()[201]
        wait_for(
            lambda: load.statuses()[201] > placed_before,
            timeout=RECOVERY_SECONDS,
            what="an order placed after the outage",
        )
        time.sleep(0.5)
    return load, began, ended


def assert_only_503s_during_the_outage(load: Load, began: float, ended: float) -> None:
    answers = load.answers()
    statuses = load.statuses()
    assert set(statuses) <= {200, 201, 422, 503}, statuses
    assert statuses[0] == 0, "a request got no HTTP answer at all"
    for answer in answers:
        if answer.status == 503:
            assert answer.code == "service_unavailable", answer
            assert answer.received >= began, (answer, began, ended)
            assert answer.sent <= ended + GRACE_SECONDS, (answer, began, ended)


def assert_the_processor_survived_and_fills(system) -> None:
    assert system.processor.poll() is None, system.processor_log.read_text()
    system.set_market(btc="44999")  # crosses every resting BUY of the load (limit 45000)
    try:
        wait_for(lambda: pending_crossed_at(system, "44999") == 0, timeout=20, interval=0.2, what="resting fills")
    finally:
        system.set_market()


def assert_the_outage_cost_nothing(system, load: Load, began: float, ended: float) -> None:
    """503s only while the database was away, every order placed once, the processor alive
    and filling, and the ledger whole."""
    assert_only_503s_during_the_outage(load, began, ended)
    assert_nothing_lost_or_doubled(system, load)
    assert_the_processor_survived_and_fills(system)
    assert_ledger_reconciles(system)


def test_a_fast_restart_under_load_is_503_only_while_down_and_loses_nothing(healthy_system):
    # given
    system = healthy_system

    # when: two fast restarts (every connection cut), a second apart
    def restart_twice():
        system.pg.restart()
        time.sleep(1)
        system.pg.restart()

    load, began, ended = run_under_load(system, restart_twice)

    # then
    assert_the_outage_cost_nothing(system, load, began, ended)


def test_killed_backends_crash_recovery_under_load_loses_nothing(healthy_system):
    # given
    system = healthy_system

    # when: SIGKILL of the backends, which PostgreSQL treats as a crash of the whole server
    load, began, ended = run_under_load(system, system.pg.kill_backends)

    # then
    assert_the_outage_cost_nothing(system, load, began, ended)


def test_a_stopped_database_is_answered_503_at_once_and_health_says_so(healthy_system):
    # given
    system = healthy_system
    holder = requests.Session()

    # when: the database is down for three seconds
    def stop_for_a_while():
        system.pg.stop()
        started = time.monotonic()
        health = holder.get(f"{system.url}/health/", timeout=10)
        latency = time.monotonic() - started
        assert health.status_code == 503
        assert health.json()["database"].startswith("error: ")
        assert latency < 1.0, latency
        time.sleep(3)
        system.pg.start_again()

    load, began, ended = run_under_load(system, stop_for_a_while)

    # then: 503s came quickly, not after a hang
    slow = [a for a in load.answers() if a.status == 503 and a.received - a.sent > 1.0]
    assert slow == []
    assert load.statuses()[503] > 0
    assert_the_outage_cost_nothing(system, load, began, ended)


def test_a_frozen_database_delays_answers_but_fails_none(healthy_system):
    # given
    system = healthy_system

    # when: every PostgreSQL process is stopped (SIGSTOP) for two seconds, then continued
    def freeze_for_a_while():
        pids = system.pg.freeze()
        try:
            time.sleep(2)
        finally:
            system.pg.thaw(pids)

    load, began, ended = run_under_load(system, freeze_for_a_while)

    # then
    assert_the_outage_cost_nothing(system, load, began, ended)
