"""Cancelling every pending order and closing positions, one or all: every hold released, exact
amounts, and nothing moved on failure."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from balances.models import AssetBalance
from core.exceptions import InsufficientAsset, InvalidRequest, PositionNotFound
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import cancel_all_orders, close_all_positions, close_position, place_order
from orders.validation import OrderRequest
from tests.support.balances import asset_quantity_and_held, usd_balance_and_held
from tests.support.orders import place_btc_order

pytestmark = pytest.mark.django_db

D = Decimal


# --- cancel all ---------------------------------------------------------------------------


def test_cancel_all_cancels_every_pending_order_and_releases_every_hold(user, holds_btc):
    # given two resting BUYs, a resting SELL and a stop, and a filled order
    placed = [
        place_btc_order(user, "BUY", "0.01", order_price=D("40000")),
        place_btc_order(user, "SELL", "0.05", order_price=D("60000")),
        place_btc_order(user, "BUY", "0.01", stop_price=D("60000")),
    ]

    # when
    cancelled = cancel_all_orders(user=user)

    # then
    assert [o.pk for o in cancelled] == [o.pk for o in placed]
    assert {o.status for o in cancelled} == {"CANCELLED"}
    assert Order.objects.filter(user=user, status="PENDING").count() == 0
    assert Order.objects.filter(user=user, status="COMPLETED").count() == 1
    assert usd_balance_and_held(user) == (D("5000.00"), D("0.00"))
    assert asset_quantity_and_held(user) == (D("0.1"), D("0"))
    assert reconcile_ledger() == []


def test_cancel_all_answers_each_order_as_it_is_stored(user, holds_btc):
    # given orders placed five minutes before they are cancelled
    placed = [
        place_btc_order(user, "BUY", "0.01", order_price=D("40000")),
        place_btc_order(user, "SELL", "0.05", stop_price=D("40000")),
    ]

    # when
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        cancelled = cancel_all_orders(user=user)
        now = timezone.now()

    # then: what is answered is what is stored, to the microsecond
    stored = {o.pk: o for o in Order.objects.filter(pk__in=[o.pk for o in placed])}
    fields = ("status", "held_amount", "failure_reason", "failure_code", "updated_at")
    for answered in cancelled:
        assert [getattr(answered, f) for f in fields] == [getattr(stored[answered.pk], f) for f in fields]
        assert (answered.status, answered.updated_at) == ("CANCELLED", now)


def test_cancel_all_leaves_other_users_alone(user, other_user, btc_at_50k):
    theirs = place_btc_order(other_user, "BUY", "0.01", order_price=D("40000"))
    assert cancel_all_orders(user=user) == []
    theirs.refresh_from_db()
    assert theirs.status == "PENDING"


# --- closing positions ---------------------------------------------------------------------


def test_closing_a_position_sells_all_that_is_not_held(user, holds_btc):
    # given 0.03 held by a resting SELL
    place_btc_order(user, "SELL", "0.03", order_price=D("60000"))

    # when
    closed = close_position(user=user, asset_id="btc").order

    # then
    assert (closed.order_type, closed.kind, closed.quantity, closed.status) == (
        "SELL",
        "market",
        D("0.07"),
        "COMPLETED",
    )
    assert asset_quantity_and_held(user) == (D("0.03"), D("0.03"))


@pytest.mark.parametrize(
    ("size", "sold"),
    [({"quantity": D("0.025")}, D("0.025")), ({"percentage": D("33.33")}, D("0.03333"))],
)
def test_closing_part_of_a_position(user, holds_btc, size, sold):
    assert close_position(user=user, asset_id="BTC", **size).order.quantity == sold


@pytest.mark.parametrize(
    ("size", "error"),
    [
        ({"quantity": D("0.2")}, InsufficientAsset),
        ({"percentage": D("0")}, InvalidRequest),
        ({"percentage": D("100.01")}, InvalidRequest),
        ({"quantity": D("0.01"), "percentage": D("50")}, InvalidRequest),
    ],
)
def test_closing_more_than_is_free_or_a_bad_share_moves_nothing(user, holds_btc, money_snapshot, size, error):
    before = money_snapshot(user)
    with pytest.raises(error):
        close_position(user=user, asset_id="BTC", **size)
    assert money_snapshot(user) == before


def test_closing_a_position_not_held_is_not_found(user, btc_at_50k):
    with pytest.raises(PositionNotFound):
        close_position(user=user, asset_id="BTC")


def test_close_all_cancels_the_orders_then_sells_every_holding(user, holds_btc, eth, set_price):
    # given
    set_price("ETH", "2500")
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=D("1")))
    resting = place_btc_order(user, "SELL", "0.05", order_price=D("60000"))

    # when
    cancelled, closed = close_all_positions(user=user, cancel_orders=True)

    # then: 0.1 x 50000 + 1 x 2500 back in cash
    assert [o.pk for o in cancelled] == [resting.pk]
    assert [(c.asset_id, c.order.status, c.order.quantity, c.error) for c in closed] == [
        ("BTC", "COMPLETED", D("0.1"), None),
        ("ETH", "COMPLETED", D("1"), None),
    ]
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))
    assert not AssetBalance.objects.filter(user=user, quantity__gt=0).exists()
    assert reconcile_ledger() == []


def test_close_all_reports_an_asset_it_could_not_sell_and_sells_the_others(user, holds_btc, eth, set_price):
    # given ETH held, whose last price is then too old to trade on
    from datetime import timedelta

    from django.utils import timezone

    set_price("ETH", "2500")
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=D("1")))
    set_price("ETH", "2500", as_of=timezone.now() - timedelta(hours=1))

    # when
    _cancelled, closed = close_all_positions(user=user, cancel_orders=True)

    # then BTC sold; ETH not, with the reason and no order (a transient refusal stores none)
    assert (closed[0].asset_id, closed[0].order.status, closed[0].error) == ("BTC", "COMPLETED", None)
    assert (closed[1].asset_id, closed[1].order, closed[1].error.code) == ("ETH", None, "price_unavailable")
    assert asset_quantity_and_held(user, "ETH") == (D("1"), D("0"))
    assert not Order.objects.filter(user=user, asset_id="ETH", order_type="SELL").exists()
