"""Replacing a pending order (docs/DESIGN.md, "How an order flows"): the order and its hold move
to the replacement in one step, or nothing moves."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from core.exceptions import Conflict, InsufficientFunds, InvalidRequest, OrderNoLongerPending
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import replace_order
from orders.validation import OrderChanges
from tests.support.balances import asset_quantity_and_held, usd_balance_and_held
from tests.support.orders import place_btc_order

pytestmark = pytest.mark.django_db

D = Decimal


def test_replace_moves_the_order_and_its_hold_in_one_step(user, btc_at_50k):
    # given a limit BUY holding 0.01 x 40000 = 400.00
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"), client_order_id="first")

    # when: 0.02 at 41000 holds 820.00
    new = replace_order(
        order=old, changes=OrderChanges(quantity=D("0.02"), order_price=D("41000"), client_order_id="second")
    )

    # then
    old.refresh_from_db()
    assert (old.status, old.replaced_by_id, old.held_amount) == ("REPLACED", new.pk, D("0"))
    assert (new.status, new.replaces_id, new.quantity, new.order_price, new.held_amount) == (
        "PENDING",
        old.pk,
        D("0.02"),
        D("41000"),
        D("820.00"),
    )
    assert (new.client_order_id, new.expires_at, new.time_in_force) == ("second", old.expires_at, "gtc")
    assert usd_balance_and_held(user) == (D("10000.00"), D("820.00"))
    assert reconcile_ledger() == []


def test_replace_of_a_sell_moves_its_held_quantity(user, holds_btc):
    old = place_btc_order(user, "SELL", "0.03", order_price=D("60000"))
    new = replace_order(order=old, changes=OrderChanges(quantity=D("0.05")))
    assert (new.quantity, new.order_price) == (D("0.05"), D("60000"))
    assert asset_quantity_and_held(user) == (D("0.1"), D("0.05"))
    assert reconcile_ledger() == []


def test_a_replacement_the_market_crosses_fills_at_once(user, btc_at_50k):
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))
    new = replace_order(order=old, changes=OrderChanges(order_price=D("50000")))
    assert (new.status, new.executed_price, new.total_amount, new.held_amount) == (
        "COMPLETED",
        D("50000"),
        D("500.00"),
        D("0"),
    )
    assert usd_balance_and_held(user) == (D("9500.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_replace_that_does_not_fit_the_balance_changes_nothing(user, btc_at_50k, money_snapshot):
    # given
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))
    before = money_snapshot(user)

    # when / then: 1 x 40000 = 40000.00 > 10000.00
    with pytest.raises(InsufficientFunds):
        replace_order(order=old, changes=OrderChanges(quantity=D("1")))
    old.refresh_from_db()
    assert (old.status, old.replaced_by_id) == ("PENDING", None)
    assert money_snapshot(user) == before
    assert Order.objects.count() == 1


def test_replace_of_an_order_no_longer_pending_is_a_conflict(user, btc_at_50k):
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))
    stale = Order.objects.get(pk=old.pk)
    replace_order(order=old, changes=OrderChanges(order_price=D("39000")))

    with pytest.raises(OrderNoLongerPending):
        replace_order(order=stale, changes=OrderChanges(order_price=D("38000")))
    assert Order.objects.filter(status="PENDING").count() == 1


def test_replace_with_a_client_order_id_already_used_is_a_conflict(user, btc_at_50k):
    place_btc_order(user, "BUY", "0.01", order_price=D("30000"), client_order_id="taken")
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))
    with pytest.raises(Conflict):
        replace_order(order=old, changes=OrderChanges(client_order_id="taken"))
    old.refresh_from_db()
    assert old.status == "PENDING"


def test_replace_needs_something_to_change(user, btc_at_50k):
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))
    with pytest.raises(InvalidRequest):
        replace_order(order=old, changes=OrderChanges())


def test_replace_leaves_the_callers_old_order_as_it_is_stored(user, btc_at_50k, set_price):
    # given
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))

    # when
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        set_price("BTC", "50000")
        new = replace_order(order=old, changes=OrderChanges(order_price=D("39000")))

    # then: the instance the caller holds says what the row says
    stored = Order.objects.get(pk=old.pk)
    assert (old.status, old.replaced_by_id, old.held_amount, old.updated_at) == (
        stored.status,
        stored.replaced_by_id,
        stored.held_amount,
        stored.updated_at,
    )
    assert (old.status, old.replaced_by_id, old.updated_at) == ("REPLACED", new.pk, new.created_at)


def test_replace_with_the_key_of_an_order_refused_for_want_of_a_price_takes_it(user, btc_at_50k):
    # given the row a 503 used to store, holding the key
    refused = Order.objects.create(
        user=user,
        asset=btc_at_50k,
        order_type="BUY",
        quantity=D("0.01"),
        status="FAILED",
        failure_code="price_unavailable",
        failure_details={"asset_id": "BTC"},
        client_order_id="k-1",
    )
    old = place_btc_order(user, "BUY", "0.01", order_price=D("40000"))

    # when
    new = replace_order(order=old, changes=OrderChanges(order_price=D("39000"), client_order_id="k-1"))

    # then
    refused.refresh_from_db()
    assert (new.client_order_id, refused.client_order_id) == ("k-1", None)
    assert refused.failure_details == {"asset_id": "BTC", "client_order_id": "k-1"}
