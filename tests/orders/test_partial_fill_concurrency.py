"""Cancels, replaces and processors racing on partly filled orders, in threads with their own
connections: an order never fills more than its quantity, its filled_quantity is always the
sum of its fills, and no hold is released twice (docs/DESIGN.md, "Fill model", "Lock order")."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from balances.models import AssetTransaction
from core.exceptions import OrderNoLongerPending, OrderNotCancellable
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import cancel_order, place_order, process_resting_orders, replace_order, set_account_fill_model
from orders.validation import OrderChanges, OrderRequest
from tests.support.threads import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
T0 = datetime(2026, 12, 7, 12, 0, 5, tzinfo=UTC)


def _at(minute: int):
    return time_machine.travel(T0 + timedelta(minutes=minute), tick=False)


def _every_order_is_its_fills(orders) -> None:
    for order in Order.objects.filter(pk__in=[o.pk for o in orders]):
        fills = AssetTransaction.objects.filter(order=order, transaction_type__in=["BUY", "SELL"])
        assert (fills.aggregate(total=Sum("quantity"))["total"] or 0) == order.filled_quantity
        assert order.filled_quantity <= order.quantity


def test_cancels_replaces_and_processors_racing_on_partly_filled_orders(make_user, btc, set_price):
    # given: 4 traders filling at most 10 % of a minute's volume, each with 0.1 BTC, 3 resting
    # BUYs of 0.02 at 51,000 and 3 resting SELLs of 0.03 at 49,000
    traders = [make_user(f"trader{i}") for i in range(4)]
    with _at(0):
        set_price("BTC", "55000", volume=D("1"))
        orders = []
        for trader in traders:
            set_account_fill_model(user=trader, fill_participation=D("0.1"), maker_fee_bps=D(15))
            place_order(user=trader, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
            for _ in range(3):
                request = OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.02"), order_price=D("51000"))
                orders.append(place_order(user=trader, request=request).order)
        set_price("BTC", "45000", volume=D("1"))
        for trader in traders:
            for _ in range(3):
                request = OrderRequest(asset_id="BTC", order_type="SELL", quantity=D("0.03"), order_price=D("49000"))
                orders.append(place_order(user=trader, request=request).order)
    # the market crosses them all, with 0.1 BTC a minute: 0.005 to 0.01 of each a minute
    with _at(1):
        set_price("BTC", "50000", volume=D("0.1"))
        first = process_resting_orders()
    partly = Order.objects.filter(pk__in=[o.pk for o in orders], filled_quantity__gt=0, status="PENDING").count()
    assert first.filled == partly == len(orders)  # every one partly filled, none whole

    def canceller(chosen: list[Order]) -> Callable[[], int]:
        def call() -> int:
            done = 0
            for order in random.sample(chosen, len(chosen)):
                try:
                    cancel_order(order=Order.objects.get(pk=order.pk))
                    done += 1
                except OrderNotCancellable:
                    pass
            return done

        return call

    def replacer(chosen: list[Order]) -> Callable[[], int]:
        def call() -> int:
            done = 0
            for order in random.sample(chosen, len(chosen)):
                fresh = Order.objects.get(pk=order.pk)
                try:
                    replace_order(order=fresh, changes=OrderChanges(order_price=fresh.order_price))
                    done += 1
                except OrderNoLongerPending:
                    pass
            return done

        return call

    # when: in the next minutes, two processors fill while threads cancel and replace them
    tally = {"filled": 0, "cancelled": 0, "replaced": 0}
    for minute in (2, 3):
        with _at(minute):
            set_price("BTC", "50000", volume=D("0.1"))
            results = run_concurrently(
                process_resting_orders,
                process_resting_orders,
                canceller(orders[0::3]),
                replacer(orders[1::3]),
                canceller(orders[1::3]),
            )
        assert all(not isinstance(result, Exception) for result in results), results
        tally["filled"] += results[0].filled + results[1].filled
        tally["cancelled"] += results[2] + results[4]
        tally["replaced"] += results[3]

    # then: all three happened
    assert all(tally.values()), tally
    # no order filled more than its quantity, each is the sum of its fills, every
    # balance, hold and held quantity is explained by its ledger and open orders
    everything = list(Order.objects.filter(user__in=traders))
    _every_order_is_its_fills(everything)
    assert reconcile_ledger() == []
    kept = Order.objects.filter(pk__in=[o.pk for o in orders], status__in=["CANCELLED", "REPLACED"])
    assert all(order.filled_quantity > 0 for order in kept)  # what filled before stays filled
