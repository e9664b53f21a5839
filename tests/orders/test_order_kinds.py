"""Brokerage features of the engine (docs/DESIGN.md, "How an order flows"): stop and stop-limit orders with their
holds, notional market orders, time in force, replace, cancel-all, closing positions, and
the cost basis from the USD actually paid. Exact amounts, and nothing moved on failure."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from balances.models import AssetBalance
from balances.selectors import calculate_portfolio_value
from core.exceptions import (
    Conflict,
    InsufficientAsset,
    InsufficientFunds,
    InvalidRequest,
    OrderNoLongerPending,
    PositionNotFound,
)
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import (
    OrderFailed,
    cancel_all_orders,
    close_all_positions,
    close_position,
    place_order,
    process_resting_orders,
    replace_order,
)
from orders.validation import OrderChanges, OrderRequest
from tests.support.balances import asset_quantity_and_held, usd_balance_and_held

pytestmark = pytest.mark.django_db

D = Decimal


def order(user, order_type: str, quantity: str | None = None, **extra) -> Order:
    size = {"quantity": D(quantity)} if quantity is not None else {}
    return place_order(user=user, request=OrderRequest(asset_id="BTC", order_type=order_type, **size, **extra)).order


@pytest.fixture
def holds_btc(user, btc_at_50k):
    """alice bought 0.1 BTC at 50000 for 5000.00."""
    order(user, "BUY", "0.1")


# --- kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prices", "kind"),
    [
        ({}, "market"),
        ({"order_price": D("40000")}, "limit"),
        ({"stop_price": D("60000")}, "stop"),
        ({"stop_price": D("60000"), "order_price": D("61000")}, "stop_limit"),
    ],
)
def test_the_kind_follows_from_the_prices_given(user, btc_at_50k, prices, kind):
    assert order(user, "BUY", "0.01", **prices).kind == kind


# --- stop orders ------------------------------------------------------------------------


def test_a_stop_buy_rests_holding_quantity_times_stop_plus_the_margin(user, btc_at_50k, settings):
    # given
    settings.STOP_BUY_HOLD_MARGIN = D("0.05")

    # when: 0.01 x 60000 x 1.05 = 630.00
    stop = order(user, "BUY", "0.01", stop_price=D("60000"))

    # then
    assert (stop.status, stop.held_amount, stop.triggered_at) == ("PENDING", D("630.00"), None)
    assert usd_balance_and_held(user) == (D("10000.00"), D("630.00"))
    assert reconcile_ledger() == []


def test_a_stop_buy_waits_below_its_stop_and_fills_at_market_once_reached(user, btc_at_50k, set_price):
    # given
    stop = order(user, "BUY", "0.01", stop_price=D("60000"))
    set_price("BTC", "59999.99")
    assert process_resting_orders().filled == 0

    # when the market rises past the stop
    set_price("BTC", "60500")
    report = process_resting_orders()

    # then it filled at the market, its hold released: 0.01 x 60500 = 605.00
    stop.refresh_from_db()
    assert report.filled == 1
    assert (stop.status, stop.executed_price, stop.total_amount, stop.held_amount) == (
        "COMPLETED",
        D("60500"),
        D("605.00"),
        D("0"),
    )
    assert stop.triggered_at is not None
    assert usd_balance_and_held(user) == (D("9395.00"), D("0.00"))
    assert asset_quantity_and_held(user) == (D("0.01"), D("0"))
    assert reconcile_ledger() == []


def test_a_stop_sell_holds_its_quantity_and_fills_when_the_market_falls_to_it(user, holds_btc, set_price):
    # given
    stop = order(user, "SELL", "0.04", stop_price=D("45000"))
    assert asset_quantity_and_held(user) == (D("0.1"), D("0.04"))
    set_price("BTC", "45000.01")
    assert process_resting_orders().filled == 0

    # when
    set_price("BTC", "44000")
    process_resting_orders()

    # then: 0.04 x 44000 = 1760.00
    stop.refresh_from_db()
    assert (stop.status, stop.executed_price, stop.total_amount) == ("COMPLETED", D("44000"), D("1760.00"))
    assert asset_quantity_and_held(user) == (D("0.06"), D("0"))
    assert usd_balance_and_held(user) == (D("6760.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_a_stop_already_reached_when_placed_fills_at_once(user, btc_at_50k):
    # when: the market (50000) is already at or above a BUY stop of 49000
    stop = order(user, "BUY", "0.01", stop_price=D("49000"))

    # then
    assert (stop.status, stop.executed_price, stop.total_amount) == ("COMPLETED", D("50000"), D("500.00"))
    assert stop.triggered_at == stop.filled_at
    assert usd_balance_and_held(user) == (D("9500.00"), D("0.00"))


def test_a_stop_limit_triggers_at_its_stop_then_waits_for_its_limit(user, btc_at_50k, set_price):
    # given: stop 55000, limit 54000 (buy once the market breaks out, but not above 54000)
    stop_limit = order(user, "BUY", "0.01", stop_price=D("55000"), order_price=D("54000"))
    assert (stop_limit.held_amount, usd_balance_and_held(user)) == (D("540.00"), (D("10000.00"), D("540.00")))

    # when the market reaches the stop, above the limit
    set_price("BTC", "56000")
    assert process_resting_orders().filled == 0

    # then it is a limit order now, changed when it triggered
    stop_limit.refresh_from_db()
    assert (stop_limit.status, stop_limit.held_amount) == ("PENDING", D("540.00"))
    assert stop_limit.triggered_at is not None
    assert stop_limit.updated_at == stop_limit.triggered_at

    # when the market comes back below the stop, to the limit
    set_price("BTC", "53000")
    assert process_resting_orders().filled == 1

    # then it fills as the limit order it became
    stop_limit.refresh_from_db()
    assert (stop_limit.status, stop_limit.executed_price, stop_limit.total_amount) == (
        "COMPLETED",
        D("53000"),
        D("530.00"),
    )
    assert usd_balance_and_held(user) == (D("9470.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_a_stop_buy_the_market_gaps_past_beyond_what_it_holds_ends_failed(user, btc_at_50k, set_price, settings):
    # given: 10000.00 USD, a stop BUY holding 0.19 x 50100 x 1.05 = 9994.95
    stop = order(user, "BUY", "0.19", stop_price=D("50100"))
    assert usd_balance_and_held(user) == (D("10000.00"), D("9994.95"))

    # when the market gaps to 60000: 0.19 x 60000 = 11400.00 > 10000.00
    set_price("BTC", "60000")
    report = process_resting_orders()

    # then it fails, its hold released, nothing bought
    stop.refresh_from_db()
    assert (report.filled, stop.status, stop.held_amount) == (0, "FAILED", D("0"))
    assert stop.failure_reason == "Not enough available USD."
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))
    assert not AssetBalance.objects.filter(user=user).exists()
    assert reconcile_ledger() == []


# --- notional -----------------------------------------------------------------------------


def test_a_notional_buy_buys_what_the_notional_pays_for_rounded_down(user, btc, set_price):
    # given: 100.00 / 33333.33 = 0.0030000003 -> 0.00300000 at 8 decimals
    set_price("BTC", "33333.33")

    # when
    bought = order(user, "BUY", notional=D("100.00"))

    # then: 0.003 x 33333.33 = 99.99999 -> 100.00, never more than the notional
    assert (bought.quantity, bought.notional, bought.total_amount) == (D("0.003"), D("100.00"), D("100.00"))
    assert usd_balance_and_held(user) == (D("9900.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_a_notional_sell_sells_the_quantity_the_notional_is_worth(user, holds_btc, set_price):
    # when: 1000.00 / 50000 = 0.02
    sold = order(user, "SELL", notional=D("1000.00"))

    # then
    assert (sold.status, sold.quantity, sold.total_amount) == ("COMPLETED", D("0.02"), D("1000.00"))
    assert asset_quantity_and_held(user) == (D("0.08"), D("0"))


@pytest.mark.parametrize(
    "extra",
    [
        {"quantity": D("0.01"), "notional": D("100.00")},
        {"notional": D("100.00"), "order_price": D("40000")},
        {"notional": D("100.00"), "stop_price": D("60000")},
        {"notional": D("100.001")},
        {"notional": D("0.50")},
        {},
    ],
)
def test_notional_is_for_market_orders_alone_and_in_cents(user, btc_at_50k, money_snapshot, extra):
    # given
    before = money_snapshot(user)

    # when / then
    with pytest.raises(InvalidRequest):
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", **extra))
    assert money_snapshot(user) == before
    assert Order.objects.count() == 0


# --- time in force ------------------------------------------------------------------------


@pytest.mark.parametrize("time_in_force", ["ioc", "fok"])
def test_an_ioc_or_fok_limit_not_filled_at_once_ends_cancelled_holding_nothing(
    user, btc_at_50k, money_snapshot, time_in_force
):
    # given
    before = money_snapshot(user)

    # when: a BUY limit below the market
    placed = order(user, "BUY", "0.01", order_price=D("40000"), time_in_force=time_in_force)

    # then
    assert (placed.status, placed.held_amount, placed.time_in_force) == ("CANCELLED", D("0"), time_in_force)
    assert money_snapshot(user) == before


@pytest.mark.parametrize("time_in_force", ["ioc", "fok"])
def test_an_ioc_or_fok_order_the_market_fills_fills(user, btc_at_50k, time_in_force):
    placed = order(user, "BUY", "0.01", order_price=D("51000"), time_in_force=time_in_force)
    assert (placed.status, placed.total_amount) == ("COMPLETED", D("500.00"))


def test_only_good_till_cancelled_orders_take_an_expiry(user, btc_at_50k):
    from django.utils import timezone

    with pytest.raises(InvalidRequest, match="Only orders that rest expire"):
        order(user, "BUY", "0.01", order_price=D("40000"), time_in_force="ioc", expires_at=timezone.now())


# --- replace ------------------------------------------------------------------------------


def test_replace_moves_the_order_and_its_hold_in_one_step(user, btc_at_50k):
    # given a limit BUY holding 0.01 x 40000 = 400.00
    old = order(user, "BUY", "0.01", order_price=D("40000"), client_order_id="first")

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
    old = order(user, "SELL", "0.03", order_price=D("60000"))
    new = replace_order(order=old, changes=OrderChanges(quantity=D("0.05")))
    assert (new.quantity, new.order_price) == (D("0.05"), D("60000"))
    assert asset_quantity_and_held(user) == (D("0.1"), D("0.05"))
    assert reconcile_ledger() == []


def test_a_replacement_the_market_crosses_fills_at_once(user, btc_at_50k):
    old = order(user, "BUY", "0.01", order_price=D("40000"))
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
    old = order(user, "BUY", "0.01", order_price=D("40000"))
    before = money_snapshot(user)

    # when / then: 1 x 40000 = 40000.00 > 10000.00
    with pytest.raises(InsufficientFunds):
        replace_order(order=old, changes=OrderChanges(quantity=D("1")))
    old.refresh_from_db()
    assert (old.status, old.replaced_by_id) == ("PENDING", None)
    assert money_snapshot(user) == before
    assert Order.objects.count() == 1


def test_replace_of_an_order_no_longer_pending_is_a_conflict(user, btc_at_50k):
    old = order(user, "BUY", "0.01", order_price=D("40000"))
    stale = Order.objects.get(pk=old.pk)
    replace_order(order=old, changes=OrderChanges(order_price=D("39000")))

    with pytest.raises(OrderNoLongerPending):
        replace_order(order=stale, changes=OrderChanges(order_price=D("38000")))
    assert Order.objects.filter(status="PENDING").count() == 1


def test_replace_with_a_client_order_id_already_used_is_a_conflict(user, btc_at_50k):
    order(user, "BUY", "0.01", order_price=D("30000"), client_order_id="taken")
    old = order(user, "BUY", "0.01", order_price=D("40000"))
    with pytest.raises(Conflict):
        replace_order(order=old, changes=OrderChanges(client_order_id="taken"))
    old.refresh_from_db()
    assert old.status == "PENDING"


def test_replace_needs_something_to_change(user, btc_at_50k):
    old = order(user, "BUY", "0.01", order_price=D("40000"))
    with pytest.raises(InvalidRequest):
        replace_order(order=old, changes=OrderChanges())


def test_replace_leaves_the_callers_old_order_as_it_is_stored(user, btc_at_50k, set_price):
    # given
    old = order(user, "BUY", "0.01", order_price=D("40000"))

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
    old = order(user, "BUY", "0.01", order_price=D("40000"))

    # when
    new = replace_order(order=old, changes=OrderChanges(order_price=D("39000"), client_order_id="k-1"))

    # then
    refused.refresh_from_db()
    assert (new.client_order_id, refused.client_order_id) == ("k-1", None)
    assert refused.failure_details == {"asset_id": "BTC", "client_order_id": "k-1"}


# --- cancel all ---------------------------------------------------------------------------


def test_cancel_all_cancels_every_pending_order_and_releases_every_hold(user, holds_btc):
    # given two resting BUYs, a resting SELL and a stop, and a filled order
    placed = [
        order(user, "BUY", "0.01", order_price=D("40000")),
        order(user, "SELL", "0.05", order_price=D("60000")),
        order(user, "BUY", "0.01", stop_price=D("60000")),
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
    placed = [order(user, "BUY", "0.01", order_price=D("40000")), order(user, "SELL", "0.05", stop_price=D("40000"))]

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
    theirs = order(other_user, "BUY", "0.01", order_price=D("40000"))
    assert cancel_all_orders(user=user) == []
    theirs.refresh_from_db()
    assert theirs.status == "PENDING"


# --- closing positions ---------------------------------------------------------------------


def test_closing_a_position_sells_all_that_is_not_held(user, holds_btc):
    # given 0.03 held by a resting SELL
    order(user, "SELL", "0.03", order_price=D("60000"))

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
    resting = order(user, "SELL", "0.05", order_price=D("60000"))

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


# --- cost basis ---------------------------------------------------------------------------


def test_the_cost_basis_is_the_usd_paid_rounding_cent_included(user, btc, set_price):
    # given: 0.01 x 63389.3 = 633.893, paid 633.90
    set_price("BTC", "63389.3")

    # when
    order(user, "BUY", "0.01")
    portfolio = calculate_portfolio_value(user=user)

    # then: the basis is what was paid (it was 633.89 before), and that cent is the P&L
    (value,) = portfolio.asset_balances
    assert (value.holding.average_purchase_price, value.cost_basis) == (D("63390"), D("633.90"))
    assert (value.market_value, value.unrealized_pnl, value.unrealized_pnl_percent) == (
        D("633.89"),
        D("-0.01"),
        D("0.00"),
    )
    assert usd_balance_and_held(user)[0] + value.cost_basis == D("10000.00")


def test_buying_at_the_average_price_again_keeps_a_round_basis(user, btc_at_50k):
    # given / when: two buys at 50000 with whole-cent costs
    order(user, "BUY", "0.01")
    order(user, "BUY", "0.03")

    # then the value at the same price is the basis: 0.00 P&L
    (value,) = calculate_portfolio_value(user=user).asset_balances
    assert (value.cost_basis, value.market_value, value.unrealized_pnl) == (D("2000.00"), D("2000.00"), D("0.00"))


def test_a_failed_notional_order_is_refused_like_any_other(user, btc, set_price, settings):
    # given too little money for a notional of 20000.00
    set_price("BTC", "50000")
    with pytest.raises(OrderFailed) as failed:
        order(user, "BUY", notional=D("20000.00"))
    assert failed.value.code == "insufficient_funds"
    assert failed.value.order.status == "FAILED"
    assert failed.value.order.quantity == D("0.4")
