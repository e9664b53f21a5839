"""Real threads on PostgreSQL racing replace and cancel-all against fills: a replace
against the fill of the same order, and cancel-all against process_orders. Whoever wins,
each order ends once, holds are released exactly, and the ledger reconciles."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances.models import AssetBalance, UsdBalance
from core.exceptions import OrderNoLongerPending
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import cancel_all_orders, fill_resting_order, place_order, process_resting_orders, replace_order
from orders.validation import OrderChanges, OrderRequest
from tests.support.threads import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


def test_a_replace_racing_the_fill_of_its_order_either_replaces_or_is_a_conflict(make_user, btc, set_price):
    # given ten resting BUYs at 40000 (holding 400.00 each), then a market at 39000 that crosses them
    set_price("BTC", "50000")
    user = make_user("racer")
    orders = [
        place_order(
            user=user,
            request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000")),
        ).order
        for _ in range(10)
    ]
    quote = set_price("BTC", "39000")

    for order in orders:
        # when: a fill and a replace to 38000 (which the market does not cross) at once
        def fill(order_id=order.pk):
            return fill_resting_order(order_id=order_id, quote=quote)

        def replace(order=order):
            try:
                return replace_order(order=order, changes=OrderChanges(order_price=D("38000"))).status
            except OrderNoLongerPending:
                return "conflict"

        filled, replaced = run_concurrently(fill, replace)

        # then: exactly one of them acted on the order
        order.refresh_from_db()
        assert (filled, replaced, order.status) in {(True, "conflict", "COMPLETED"), (False, "PENDING", "REPLACED")}

    # then the money adds up whoever won each race: 390.00 a fill, 380.00 held a replacement
    fills = Order.objects.filter(user=user, status="COMPLETED").count()
    replacements = Order.objects.filter(user=user, status="PENDING")
    assert fills + replacements.count() == 10
    assert {o.replaces_id for o in replacements} <= {o.pk for o in orders}
    balance = UsdBalance.objects.get(user=user)
    assert (balance.current_balance, balance.held) == (
        D("10000.00") - fills * D("390.00"),
        replacements.count() * D("380.00"),
    )
    assert reconcile_ledger() == []


def test_cancel_all_racing_process_orders_ends_every_order_once(make_user, btc, set_price):
    # given a buyer with 10 resting BUYs and a seller with 10 resting SELLs, all crossed at 45000
    set_price("BTC", "50000")
    buyer, seller = make_user("buyer"), make_user("seller")
    place_order(user=seller, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))  # 5000.00
    for _ in range(10):
        place_order(
            user=buyer,
            request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("46000")),
        )
    set_price("BTC", "40000")
    for _ in range(10):
        place_order(
            user=seller,
            request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=D("0.01"), order_price=D("44000")),
        )
    set_price("BTC", "45000")

    # when: two processors fill while both users cancel everything
    results = run_concurrently(
        process_resting_orders,
        process_resting_orders,
        lambda: cancel_all_orders(user=buyer),
        lambda: cancel_all_orders(user=seller),
    )

    # then: no thread failed, and every order ended exactly once
    assert not [r for r in results if isinstance(r, BaseException)], results
    for user, fill_usd in ((buyer, D("-450.00")), (seller, D("450.00"))):
        orders = Order.objects.filter(user=user, quantity=D("0.01"))
        assert orders.filter(status="PENDING").count() == 0
        fills = orders.filter(status="COMPLETED").count()
        assert fills + orders.filter(status="CANCELLED").count() == 10
        balance = UsdBalance.objects.get(user=user)
        start = D("10000.00") if user == buyer else D("5000.00")
        assert (balance.current_balance, balance.held) == (start + fills * fill_usd, D("0.00"))
    cancelled_by_call = {len(r) for r in results if isinstance(r, list)}
    assert sum(cancelled_by_call) <= 20
    assert AssetBalance.objects.get(user=seller).held_quantity == 0
    assert reconcile_ledger() == []
