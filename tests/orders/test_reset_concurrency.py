"""A reset racing the account's other flows, with real threads on PostgreSQL (each its own
connection): market buys, resting fills by several process_orders, cancels, and other resets.
Whatever the interleaving, every flow comes wholly before or wholly after the reset: no order
it cancelled fills afterwards, no hold is left behind, and the ledger explains every cent
(docs/DESIGN.md, "Reset and exports", "Lock order")."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connection, transaction

from balances.models import AccountReset, AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from core.exceptions import OrderNotCancellable
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import (
    OrderFailed,
    cancel_all_orders,
    fill_resting_order,
    place_order,
    process_resting_orders,
    reset_account,
)
from orders.validation import OrderRequest
from tests.support.threads import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def resting(user, order_type: str, quantity: str, price: str) -> Order:
    order = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type=order_type, quantity=D(quantity), order_price=D(price)),
    ).order
    assert order.status == "PENDING"
    return order


def market_buys(user, count: int):
    def call() -> list[str]:
        outcomes = []
        for _ in range(count):
            try:
                outcomes.append(
                    place_order(
                        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"))
                    ).order.status
                )
            except OrderFailed as error:
                outcomes.append(error.code)
        return outcomes

    return call


def processors(passes: int):
    def call() -> int:
        return sum(process_resting_orders().filled for _ in range(passes))

    return call


def cancel_all(user):
    def call() -> int:
        try:
            return len(cancel_all_orders(user=user))
        except OrderNotCancellable:
            return 0

    return call


@pytest.mark.parametrize("run", range(3))
def test_a_reset_racing_buys_fills_cancels_and_processors_leaves_no_order_filled_after_it_nor_a_hold(
    make_user, btc, set_price, run
):
    # given alice with 0.02 BTC (1,000.00 paid), 12 resting BUYs at 45,000 holding 450.00 each
    # (5,400.00) and 2 resting SELLs at 60,000 holding her BTC; then the market falls to 44,000,
    # which crosses every BUY
    alice = make_user(f"alice{run}")
    set_price("BTC", "50000")
    place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.02")))
    buys = [resting(alice, "BUY", "0.01", "45000") for _ in range(12)]
    sells = [resting(alice, "SELL", "0.01", "60000") for _ in range(2)]
    before_reset = {order.pk for order in buys + sells}
    set_price("BTC", "44000")

    # when four processors, two buyers and a cancel-all race one reset to 5,000.00
    results = run_concurrently(
        lambda: reset_account(user=alice, cash=D("5000.00")),
        processors(3),
        processors(3),
        processors(3),
        processors(3),
        market_buys(alice, 4),
        market_buys(alice, 4),
        cancel_all(alice),
    )

    # then nothing raised
    assert not [result for result in results if isinstance(result, Exception)], results
    reset = AccountReset.objects.get(user=alice)
    reset_row = reset.cash_transaction.pk  # every row of alice's is written under her lock: ids follow it

    # every order the reset cancelled stayed cancelled, and none of them has a fill
    assert set(Order.objects.filter(pk__in=reset.cancelled_orders).values_list("status", "failure_reason")) <= {
        ("CANCELLED", "Account reset.")
    }
    assert not CashTransaction.objects.filter(order_id__in=reset.cancelled_orders).exists()
    # no order that was resting before the reset filled after it
    filled_after = CashTransaction.objects.filter(user=alice, order_id__in=before_reset, pk__gt=reset_row)
    assert list(filled_after.values_list("order_id", flat=True)) == []
    # each resting order was filled once (before the reset), or cancelled (by it, or by the cancel-all)
    statuses = dict(Order.objects.filter(pk__in=before_reset).values_list("pk", "status"))
    for pk, status in statuses.items():
        fills = CashTransaction.objects.filter(order_id=pk).count()
        assert (status, fills) in {("COMPLETED", 1), ("CANCELLED", 0)}, (pk, status, fills)
    # no hold behind: nothing rests, nothing is held
    assert not Order.objects.filter(user=alice, status="PENDING").exists()
    usd = UsdBalance.objects.get(user=alice)
    holding = AssetBalance.objects.get(user=alice)
    assert (usd.held, holding.held_quantity) == (D("0.00"), D("0"))
    # exact totals: the reset's cash plus what moved after it; BTC only from buys after it
    after = CashTransaction.objects.filter(user=alice, pk__gt=reset_row)
    assert usd.current_balance == reset.cash + sum(after.values_list("amount", flat=True), D("0"))
    bought_after = after.filter(transaction_type="BUY").count()
    assert set(after.values_list("transaction_type", flat=True)) <= {"BUY"}
    assert usd.current_balance == D("5000.00") - bought_after * D("440.00")
    assert holding.quantity == bought_after * D("0.01")
    assert reset.positions[0]["asset_id"] == "BTC"
    assert AssetTransaction.objects.get(user=alice, transaction_type="RESET").quantity == -D(
        reset.positions[0]["quantity"]
    )
    assert reconcile_ledger() == []


def test_two_resets_with_one_client_reference_at_once_reset_once(make_user, btc, set_price):
    # given
    alice = make_user("alice")
    set_price("BTC", "50000")
    place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01")))

    # when eight threads send the same reset at once
    results = run_concurrently(
        *[lambda: reset_account(user=alice, cash=D("777.00"), client_reference="once") for _ in range(8)]
    )

    # then one reset, answered to all eight
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert {r.reset.pk for r in results} == {AccountReset.objects.get().pk}
    assert CashTransaction.objects.filter(user=alice, transaction_type="RESET").count() == 1
    assert UsdBalance.objects.get(user=alice).current_balance == D("777.00")
    assert reconcile_ledger() == []


def test_resets_racing_each_other_each_set_the_cash_and_the_last_one_stays(make_user, btc, set_price):
    # given
    alice = make_user("alice")
    set_price("BTC", "50000")

    # when four resets to four amounts, and market buys, race
    amounts = [D("100.00"), D("2000.00"), D("3000.00"), D("4000.00")]
    results = run_concurrently(
        *[lambda cash=cash: reset_account(user=alice, cash=cash) for cash in amounts], market_buys(alice, 3)
    )

    # then four resets; the balance is the last one's plus what moved after it
    assert not [r for r in results if isinstance(r, Exception)], results
    last = AccountReset.objects.filter(user=alice).order_by("-cash_transaction_id").first()
    assert AccountReset.objects.filter(user=alice).count() == 4
    after = CashTransaction.objects.filter(user=alice, pk__gt=last.cash_transaction_id)
    assert UsdBalance.objects.get(user=alice).current_balance == last.cash + sum(
        after.values_list("amount", flat=True), D("0")
    )
    assert reconcile_ledger() == []


def waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_fill_queued_behind_a_reset_finds_its_order_cancelled_and_fills_nothing(make_user, btc, set_price):
    # given alice's holding and her resting BUY, which the market now crosses
    alice = make_user("alice")
    set_price("BTC", "50000")
    place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01")))
    order = resting(alice, "BUY", "0.01", "45000")
    quote = set_price("BTC", "44000")
    holding_locked, release = threading.Event(), threading.Event()
    outcomes = {}

    def hold_the_holding():  # stalls the reset after it took the user lock, at its next lock
        with transaction.atomic():
            AssetBalance.objects.select_for_update().get(user=alice)
            holding_locked.set()
            release.wait(10)
        connection.close()

    def run(name, call):
        def target():
            try:
                outcomes[name] = call()
            finally:
                connection.close()

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    holder = threading.Thread(target=hold_the_holding)
    holder.start()
    assert holding_locked.wait(10)
    try:
        # when the reset holds alice's lock (waiting for her holding), and process_orders' fill
        # of her order queues behind it for the same lock
        resetting = run("reset", lambda: reset_account(user=alice, cash=D("1000.00")))
        wait_until(lambda: waiting_on_locks() == 1, "the reset to wait for the holding")
        filling = run("fill", lambda: fill_resting_order(order_id=order.pk, quote=quote))
        wait_until(lambda: waiting_on_locks() == 2, "the fill to wait for the user lock")
    finally:
        release.set()
        holder.join(10)
    resetting.join(10)
    filling.join(10)

    # then the reset cancelled the order, and the fill, let through after it, filled nothing
    reset = outcomes["reset"].reset
    order.refresh_from_db()
    assert outcomes["fill"] is False
    assert (order.status, order.failure_reason, reset.cancelled_orders) == (
        "CANCELLED",
        "Account reset.",
        [str(order.pk)],
    )
    assert not CashTransaction.objects.filter(order=order).exists()
    usd = UsdBalance.objects.get(user=alice)
    assert (usd.current_balance, usd.held) == (D("1000.00"), D("0.00"))
    assert AssetBalance.objects.get(user=alice).quantity == D("0")
    assert reconcile_ledger() == []
