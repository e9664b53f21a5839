"""process_orders keeps working for everyone when one order or one dependency fails
(docs/DESIGN.md, "Faults"). Database restarts under a running processor are in tests/faults/."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from balances.models import AssetBalance, UsdBalance
from orders.models import Order
from orders.services import FailingOrders, cancel_order, place_order, process_resting_orders
from orders.validation import OrderRequest
from tests.support.processes import PYTHON, ROOT, OwnRedis, database_url, free_port, python_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
# The largest quantity the column holds (38 digits, 18 after the point).
MAX_QUANTITY = D("99999999999999999999.999999999999999999")


def resting_buy(user, quantity: str, limit: str) -> Order:
    order = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D(quantity), order_price=D(limit))
    ).order
    assert order.status == "PENDING"
    return order


def test_an_order_that_cannot_be_filled_is_logged_and_skipped_and_the_others_fill(make_user, btc, set_price, caplog):
    # given: two resting BUYs the market crosses; the first one's fill would overflow its
    # owner's holding (a DataError from PostgreSQL), and it comes first in the pass
    set_price("BTC", "50000")
    alice, bob = make_user("alice"), make_user("bob")
    doomed = resting_buy(alice, "0.01", "45000")
    fine = resting_buy(bob, "0.01", "45000")
    AssetBalance.objects.create(user=alice, asset=btc, quantity=MAX_QUANTITY)
    set_price("BTC", "44000.01")
    out = io.StringIO()

    # when
    with caplog.at_level(logging.ERROR, logger="orders.services"):
        call_command("process_orders", "--once", stdout=out)

    # then: bob's order filled; alice's stays PENDING with nothing of hers moved
    assert Order.objects.get(pk=fine.pk).status == "COMPLETED"
    assert UsdBalance.objects.filter(user=bob).values_list("current_balance", "held").get() == (
        D("9559.99"),
        D("0.00"),
    )
    assert Order.objects.get(pk=doomed.pk).status == "PENDING"
    assert UsdBalance.objects.filter(user=alice).values_list("current_balance", "held").get() == (
        D("10000.00"),
        D("450.00"),
    )
    assert AssetBalance.objects.get(user=alice, asset=btc).quantity == MAX_QUANTITY
    assert out.getvalue().startswith("filled 1, expired 0, skipped 0, failed 1 in ")
    [record] = [r for r in caplog.records if r.name == "orders.services"]
    assert record.getMessage() == (
        f"process_orders: order {doomed.pk} could not be processed; skipped, it stays PENDING"
    )
    assert record.exc_info[0].__name__ == "DataError"


@pytest.fixture
def processor_env(coingecko_server):
    """The environment of a process_orders subprocess on this test's database, pricing
    BTC from the local CoinGecko, which it asks on every pass: the last good price is in the
    database, and reused for PRICE_CACHE_SECONDS it would hide, on the first pass, a price
    the test set just after this process fetched the previous one."""
    coingecko_server.set_price("bitcoin", "50000")
    return python_env(
        DATABASE_URL=database_url(connection.settings_dict),
        PRICE_PROVIDER="coingecko",
        COINGECKO_API_URL=coingecko_server.url,
        COINGECKO_TIMEOUT_SECONDS="0.5",
        COINGECKO_RETRIES="0",
        PRICE_CACHE_SECONDS="0",
    )


def test_an_unreachable_redis_does_not_end_the_processor_and_it_fills_once_redis_is_back(
    make_user, btc, coingecko_server, processor_env
):
    # given: a resting BUY, and a processor whose cache is a Redis that is not there yet
    order = resting_buy(make_user("alice"), "0.01", "45000")
    coingecko_server.set_price("bitcoin", "44000.01")
    redis = OwnRedis(port=free_port())
    processor = subprocess.Popen(
        [PYTHON, "manage.py", "process_orders", "--interval", "0.2", "--max-backoff", "0.5"],
        cwd=ROOT,
        env={**processor_env, "CACHE_URL": redis.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # when: several passes fail on the cache, then Redis comes up
        time.sleep(3)
        alive_through_the_outage = processor.poll() is None
        assert alive_through_the_outage, processor.communicate(timeout=5)[1]
        redis.start()
        filled = wait_for(
            lambda: Order.objects.get(pk=order.pk).status == "COMPLETED",
            timeout=15,
            interval=0.2,
            what="the order to be filled",
        )
    finally:
        processor.send_signal(signal.SIGTERM)
        out, err = processor.communicate(timeout=15)
        redis.stop()

    # then
    assert filled
    assert processor.returncode == 0, err
    assert "filled 1, expired 0, skipped 0 in " in out


def test_a_poison_order_is_logged_once_with_its_traceback_not_on_every_pass(
    make_user, btc, coingecko_server, processor_env
):
    # given a resting BUY that raises on every pass (its fill overflows the holding)
    alice = make_user("alice")
    doomed = resting_buy(alice, "0.01", "45000")
    AssetBalance.objects.create(user=alice, asset=btc, quantity=MAX_QUANTITY)
    coingecko_server.set_price("bitcoin", "44000.01")
    processor = subprocess.Popen(
        [PYTHON, "manage.py", "process_orders", "--interval", "0.1", "-v", "2"],
        cwd=ROOT,
        env=processor_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # when: it runs ten passes
    passes = []
    reader = threading.Thread(target=lambda: passes.extend(line for line in processor.stdout if "filled" in line))
    reader.start()
    try:
        wait_for(lambda: len(passes) >= 10, timeout=30, interval=0.1, what="ten passes")
    finally:
        processor.send_signal(signal.SIGTERM)
        _, err = processor.communicate(timeout=15)
        reader.join(timeout=5)

    # then: one traceback, no repeat within the minute, and the order still PENDING
    assert all(line.startswith("filled 0, expired 0, skipped 0, failed 1 in ") for line in passes), passes
    logged = [line for line in err.splitlines() if line.startswith("process_orders")]
    assert logged == [f"process_orders: order {doomed.pk} could not be processed; skipped, it stays PENDING"], err
    assert err.count("django.db.utils.DataError: numeric field overflow") == 1, err
    assert Order.objects.get(pk=doomed.pk).status == "PENDING"


def test_a_poison_order_is_logged_again_once_a_minute_with_a_count_and_forgotten_once_settled(
    make_user, btc, set_price, caplog
):
    # given a resting BUY that raises on every pass
    alice = make_user("alice")
    doomed = resting_buy(alice, "0.01", "45000")
    AssetBalance.objects.create(user=alice, asset=btc, quantity=MAX_QUANTITY)
    failing = FailingOrders()
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        set_price("BTC", "44000.01")

        def passes(count: int) -> list[str]:
            caplog.clear()
            for _ in range(count):
                set_price("BTC", "44000.01")  # fresh at the travelled time
                assert process_resting_orders(failing=failing).failed == 1
                clock.shift(timedelta(seconds=20))
            return [record.getMessage() for record in caplog.records if record.name == "orders.services"]

        # when: passes every 20 s for a minute and a half, then the order is cancelled
        with caplog.at_level(logging.WARNING, logger="orders.services"):
            first, later = passes(3), passes(2)
            cancel_order(order=doomed)
            process_resting_orders(failing=failing)

    # then: the first failure in full, then one line a minute with the count since
    assert first == [f"process_orders: order {doomed.pk} could not be processed; skipped, it stays PENDING"]
    assert later == [
        f"process_orders: order {doomed.pk} failed 4 times since {start.isoformat()} "
        "(DataError: numeric field overflow); still skipped, it stays PENDING"
    ]
    assert len(failing) == 0
