"""Order kinds in the engine (docs/DESIGN.md, "How an order flows"): market, limit, stop and
stop-limit orders with their holds, notional market orders, and time in force. Exact
amounts, and nothing moved on failure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from balances.models import AssetBalance
from core.exceptions import InvalidRequest
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import OrderFailed, place_order, process_resting_orders
from orders.validation import OrderRequest
from tests.support.balances import asset_quantity_and_held, usd_balance_and_held
from tests.support.orders import place_btc_order

pytestmark = pytest.mark.django_db

D = Decimal


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
    assert place_btc_order(user, "BUY", "0.01", **prices).kind == kind


# --- stop orders ------------------------------------------------------------------------


def test_a_stop_buy_rests_holding_quantity_times_stop_plus_the_margin(user, btc_at_50k, settings):
    # given
    settings.STOP_BUY_HOLD_MARGIN = D("0.05")

    # when: 0.01 x 60000 x 1.05 = 630.00
    stop = place_btc_order(user, "BUY", "0.01", stop_price=D("60000"))

    # then
    assert (stop.status, stop.held_amount, stop.triggered_at) == ("PENDING", D("630.00"), None)
    assert usd_balance_and_held(user) == (D("10000.00"), D("630.00"))
    assert reconcile_ledger() == []


def test_a_stop_buy_waits_below_its_stop_and_fills_at_market_once_reached(user, btc_at_50k, set_price):
    # given
    stop = place_btc_order(user, "BUY", "0.01", stop_price=D("60000"))
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
    stop = place_btc_order(user, "SELL", "0.04", stop_price=D("45000"))
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
    stop = place_btc_order(user, "BUY", "0.01", stop_price=D("49000"))

    # then
    assert (stop.status, stop.executed_price, stop.total_amount) == ("COMPLETED", D("50000"), D("500.00"))
    assert stop.triggered_at == stop.filled_at
    assert usd_balance_and_held(user) == (D("9500.00"), D("0.00"))


def test_a_stop_limit_triggers_at_its_stop_then_waits_for_its_limit(user, btc_at_50k, set_price):
    # given: stop 55000, limit 54000 (buy once the market breaks out, but not above 54000)
    stop_limit = place_btc_order(user, "BUY", "0.01", stop_price=D("55000"), order_price=D("54000"))
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
    stop = place_btc_order(user, "BUY", "0.19", stop_price=D("50100"))
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
    bought = place_btc_order(user, "BUY", notional=D("100.00"))

    # then: 0.003 x 33333.33 = 99.99999 -> 100.00, never more than the notional
    assert (bought.quantity, bought.notional, bought.total_amount) == (D("0.003"), D("100.00"), D("100.00"))
    assert usd_balance_and_held(user) == (D("9900.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_a_notional_sell_sells_the_quantity_the_notional_is_worth(user, holds_btc, set_price):
    # when: 1000.00 / 50000 = 0.02
    sold = place_btc_order(user, "SELL", notional=D("1000.00"))

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


def test_a_failed_notional_order_is_refused_like_any_other(user, btc, set_price, settings):
    # given too little money for a notional of 20000.00
    set_price("BTC", "50000")
    with pytest.raises(OrderFailed) as failed:
        place_btc_order(user, "BUY", notional=D("20000.00"))
    assert failed.value.code == "insufficient_funds"
    assert failed.value.order.status == "FAILED"
    assert failed.value.order.quantity == D("0.4")


# --- time in force ------------------------------------------------------------------------


@pytest.mark.parametrize("time_in_force", ["ioc", "fok"])
def test_an_ioc_or_fok_limit_not_filled_at_once_ends_cancelled_holding_nothing(
    user, btc_at_50k, money_snapshot, time_in_force
):
    # given
    before = money_snapshot(user)

    # when: a BUY limit below the market
    placed = place_btc_order(user, "BUY", "0.01", order_price=D("40000"), time_in_force=time_in_force)

    # then
    assert (placed.status, placed.held_amount, placed.time_in_force) == ("CANCELLED", D("0"), time_in_force)
    assert money_snapshot(user) == before


@pytest.mark.parametrize("time_in_force", ["ioc", "fok"])
def test_an_ioc_or_fok_order_the_market_fills_fills(user, btc_at_50k, time_in_force):
    placed = place_btc_order(user, "BUY", "0.01", order_price=D("51000"), time_in_force=time_in_force)
    assert (placed.status, placed.total_amount) == ("COMPLETED", D("500.00"))


def test_only_good_till_cancelled_orders_take_an_expiry(user, btc_at_50k):

    with pytest.raises(InvalidRequest, match="Only orders that rest expire"):
        place_btc_order(user, "BUY", "0.01", order_price=D("40000"), time_in_force="ioc", expires_at=timezone.now())
