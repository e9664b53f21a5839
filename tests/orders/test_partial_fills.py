"""Resting orders filled in parts under a fill model with a participation limit: each minute a
resting limit order takes at most its share of the minute's volume; each fill has its own
ledger rows and its own event; cancel, replace and expiry act on what is left; ioc and fok are
told apart (docs/DESIGN.md, "Fill model")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders.events import OrderEvent
from orders.models import OrderEventRecord
from orders.selectors import reconcile_ledger
from orders.services import (
    cancel_order,
    expire_order,
    place_order,
    process_resting_orders,
    replace_order,
    set_account_fill_model,
)
from orders.validation import OrderChanges, OrderRequest

T0 = datetime(2026, 12, 7, 12, 0, 5, tzinfo=UTC)
VOLUME = D("1")  # BTC a minute: a resting order takes 0.05 to 0.1 of it a minute


def _order(user, side: str, quantity: str, **fields):
    values = {name: D(value) if name.endswith("price") else value for name, value in fields.items()}
    return place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type=side, quantity=D(quantity), **values)
    ).order


@pytest.fixture
def participating(user, btc, set_price):
    """alice fills at the price (no spread, no slippage), resting orders at most 10 % of a
    minute's volume, maker 15 / taker 25 bps; BTC at 50,000."""
    set_account_fill_model(user=user, fill_participation=D("0.1"), maker_fee_bps=D(15), taker_fee_bps=D(25))
    with time_machine.travel(T0, tick=False):
        set_price("BTC", "50000", volume=VOLUME)
    return user


def _minute(n: int, set_price, price: str = "39000"):
    """The market at ``price`` in minute n after T0, and one pass of process_orders."""
    with time_machine.travel(T0 + timedelta(minutes=n), tick=False):
        set_price("BTC", price, volume=VOLUME)
        return process_resting_orders()


def _events(order) -> list[str]:
    events = [OrderEvent.from_json(r.payload) for r in OrderEventRecord.objects.order_by("id")]
    return [e.event for e in events if e.order["order_id"] == str(order.pk)]


def test_a_resting_buy_fills_in_parts_each_with_its_rows_and_event(participating, set_price, auth_client):
    # given a limit BUY of 0.15 at 40,000, holding 6,000.00
    with time_machine.travel(T0, tick=False):
        order = _order(participating, "BUY", "0.15", order_price="40000")
    assert order.held_amount == D("6000.00")

    # when the market crosses, minute after minute
    _minute(1, set_price)
    order.refresh_from_db()
    shown = auth_client.get(f"/api/v1/orders/{order.pk}/").json()
    again_same_minute = _minute(1, set_price)
    passes = 1
    while order.status == "PENDING" and passes < 10:
        passes += 1
        _minute(passes, set_price)
        order.refresh_from_db()

    # then: a part in the first minute, shown PARTIALLY_FILLED, nothing more in the same minute
    assert D(shown["filled_quantity"]) > 0
    assert D(shown["filled_quantity"]) <= D("0.1")
    assert shown["status"] == "PARTIALLY_FILLED"
    assert again_same_minute.filled == 0
    # the whole order in 2 or 3 minutes, at its limit (no spread: at the market, 39,000)
    assert order.status == "COMPLETED"
    assert 2 <= passes <= 3
    buys = list(AssetTransaction.objects.filter(order=order, transaction_type="BUY").values_list("quantity", flat=True))
    assert sum(buys) == order.filled_quantity == D("0.15")
    assert len(buys) == passes
    assert order.executed_price == D("39000")
    assert order.held_amount == 0
    # every fill its own event: partly_filled, then fill
    assert _events(order) == ["new", *["partly_filled"] * (passes - 1), "fill"]
    # a maker fee (15 bps) in BTC for each fill, and the hold all released
    fees = AssetTransaction.objects.filter(order=order, transaction_type="FEE").values_list("quantity", flat=True)
    assert len(fees) == passes
    usd = UsdBalance.objects.get(user=participating)
    assert usd.held == 0
    assert usd.current_balance == D("10000") + sum(
        CashTransaction.objects.filter(order=order).values_list("amount", flat=True)
    )
    holding = AssetBalance.objects.get(user=participating, asset_id="BTC")
    assert holding.quantity == D("0.15") + sum(fees)
    assert reconcile_ledger() == []


def test_cancelling_a_partly_filled_buy_releases_only_what_it_still_holds(participating, set_price):
    # given
    with time_machine.travel(T0, tick=False):
        order = _order(participating, "BUY", "0.2", order_price="40000")
    _minute(1, set_price)
    order.refresh_from_db()
    filled, held = order.filled_quantity, order.held_amount
    assert 0 < filled < D("0.2")
    assert held == ((D("0.2") - filled) * 40000).quantize(D("0.01"))

    # when
    cancel_order(order=order)

    # then
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.held_amount) == ("CANCELLED", filled, 0)
    assert UsdBalance.objects.get(user=participating).held == 0
    assert _events(order)[-2:] == ["partly_filled", "cancelled"]
    assert reconcile_ledger() == []


def test_a_partly_filled_sell_releases_what_is_left_when_it_expires(participating, set_price):
    # given a holding of 1 BTC, a SELL of 0.5 resting at 60,000, partly filled
    with time_machine.travel(T0, tick=False):
        set_account_fill_model(user=participating, maker_fee_bps=D(0), taker_fee_bps=D(0))
        _order(participating, "BUY", "0.15")
        order = _order(participating, "SELL", "0.15", order_price="60000")
    _minute(1, set_price, price="61000")
    order.refresh_from_db()
    assert 0 < order.filled_quantity < D("0.15")
    holding = AssetBalance.objects.get(user=participating, asset_id="BTC")
    assert holding.held_quantity == D("0.15") - order.filled_quantity

    # when
    expire_order(order=order)

    # then
    order.refresh_from_db()
    assert order.status == "EXPIRED"
    assert AssetBalance.objects.get(user=participating, asset_id="BTC").held_quantity == 0
    assert reconcile_ledger() == []


def test_replacing_a_partly_filled_order_keeps_what_filled_and_replaces_the_rest(participating, set_price):
    # given
    with time_machine.travel(T0, tick=False):
        order = _order(participating, "BUY", "0.2", order_price="40000")
    _minute(1, set_price)
    order.refresh_from_db()
    filled = order.filled_quantity

    # when: a new limit for what is left
    with time_machine.travel(T0 + timedelta(minutes=1, seconds=30), tick=False):
        new = replace_order(order=order, changes=OrderChanges(order_price=D("38000")))

    # then
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("REPLACED", filled)
    assert new.quantity == D("0.2") - filled
    assert new.held_amount == (new.quantity * 38000).quantize(D("0.01"))
    assert UsdBalance.objects.get(user=participating).held == new.held_amount
    assert reconcile_ledger() == []


def test_ioc_fills_what_it_can_at_once_and_cancels_the_rest_fok_fills_nothing(participating, set_price):
    # given the market at 39,000 with 1 BTC a minute: at most 0.1 fills at once
    with time_machine.travel(T0, tick=False):
        set_price("BTC", "39000", volume=VOLUME)

        # when
        ioc = _order(participating, "BUY", "0.2", order_price="40000", time_in_force="ioc")
        fok = _order(participating, "BUY", "0.2", order_price="40000", time_in_force="fok")

    # then
    assert ioc.status == "CANCELLED"
    assert 0 < ioc.filled_quantity <= D("0.1")
    assert _events(ioc) == ["new", "partly_filled", "cancelled"]
    assert (fok.status, fok.filled_quantity) == ("CANCELLED", 0)
    assert not AssetTransaction.objects.filter(order=fok).exists()
    assert UsdBalance.objects.get(user=participating).held == 0
    # the ioc's fill was a taker's: 25 bps
    fee = AssetTransaction.objects.get(order=ioc, transaction_type="FEE").quantity
    assert -fee == (ioc.filled_quantity * D("0.0025")).quantize(D("0.00000001"), rounding="ROUND_CEILING")
    assert reconcile_ledger() == []


def test_the_order_list_filters_what_each_order_shows(participating, set_price, auth_client):
    # given: one partly filled order, one resting untouched (below the market's reach)
    with time_machine.travel(T0, tick=False):
        partly = _order(participating, "BUY", "0.2", order_price="40000")
        resting = _order(participating, "BUY", "0.01", order_price="30000")
    _minute(1, set_price)

    # when
    def ids(status: str) -> list[str]:
        return [o["order_id"] for o in auth_client.get("/api/v1/orders/", {"status": status}).json()["results"]]

    # then
    assert ids("PARTIALLY_FILLED") == [str(partly.pk)]
    assert ids("PENDING") == [str(resting.pk)]
    assert sorted(ids("open")) == sorted([str(partly.pk), str(resting.pk)])


def test_an_ioc_priced_under_a_model_another_process_changed_fills_under_the_accounts_own(participating, set_price):
    # given: another process set alice's model to ideal (whole fills, no fees); this one still
    # knows the participating model
    from orders import selectors

    remembered = dict(selectors._KNOWN_MODELS)
    set_account_fill_model(user=participating, profile="ideal")
    selectors._KNOWN_MODELS.update(remembered)

    # when: an ioc BUY of 0.2 that the participating model would fill only in part
    with time_machine.travel(T0, tick=False):
        set_price("BTC", "39000", volume=VOLUME)
        ioc = _order(participating, "BUY", "0.2", order_price="40000", time_in_force="ioc")

    # then: priced again under ideal, it fills whole and pays no fee
    assert (ioc.status, ioc.filled_quantity) == ("COMPLETED", D("0.2"))
    assert not AssetTransaction.objects.filter(order=ioc, transaction_type="FEE").exists()
    assert reconcile_ledger() == []


def test_a_part_whose_cost_rounds_a_cent_above_what_its_hold_releases_is_paid_by_the_hold(
    make_user, btc, set_price, settings
):
    from django.db import transaction
    from django.utils import timezone

    from balances.lock_objects import usd_balance_for_update
    from orders.settlement import IDEAL_PARAMS, fill_pending_order_locked

    # given: all of alice's cash, 2.01, held by a limit BUY of 2 BTC at 1.005, the market above it
    settings.INITIAL_USD_BALANCE = D("2.01")
    alice = make_user("alice")
    set_price("BTC", "1.1")
    order = _order(alice, "BUY", "2", order_price="1.005")
    assert (order.held_amount, UsdBalance.objects.get(user=alice).available) == (D("2.01"), 0)

    # when: a part of 1 fills at 1.00401: its cost rounds up to 1.01, while keeping the rest's
    # hold (1 at 1.005, rounded up: 1.01) releases 1.00; then the rest at the same price
    quote = set_price("BTC", "1.00401")
    for _ in range(2):
        with transaction.atomic():
            usd = usd_balance_for_update(user_id=alice.pk)
            order.refresh_from_db()
            fill_pending_order_locked(
                order=order, usd=usd, quote=quote, now=timezone.now(), model=IDEAL_PARAMS, quantity=D("1")
            )

    # then: the first part cost what the hold released (1.00), the second 1.01; nothing failed
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.held_amount) == ("COMPLETED", D("2"), 0)
    buys = CashTransaction.objects.filter(order=order, transaction_type="BUY").order_by("id")
    assert [row.amount for row in buys] == [D("-1.00"), D("-1.01")]
    balance = UsdBalance.objects.get(user=alice)
    assert (balance.current_balance, balance.held) == (0, 0)
    assert AssetBalance.objects.get(user=alice, asset_id="BTC").quantity == D("2")
    assert reconcile_ledger() == []


def test_a_stop_limit_that_crosses_in_a_minute_without_volume_stays_triggered(participating, set_price):
    # given: a stop-limit BUY, stop 45,000, limit 46,000, the market below the stop
    with time_machine.travel(T0, tick=False):
        set_price("BTC", "44000", volume=VOLUME)
        order = _order(participating, "BUY", "0.05", stop_price="45000", order_price="46000")

    # when: the market passes the stop in a minute that traded nothing, then falls back below it
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        set_price("BTC", "45500", volume=D("0"))
        process_resting_orders()
    order.refresh_from_db()
    triggered_at = order.triggered_at
    _minute(2, set_price, price="44500")

    # then: the trigger was kept, and the limit order it became fills below the stop
    assert triggered_at is not None
    order.refresh_from_db()
    assert order.filled_quantity > 0
    assert reconcile_ledger() == []


def test_an_ioc_part_is_a_takers_fill_at_the_ask_plus_the_slippage_of_what_it_takes(user, btc, set_price):
    from orders.fill_model import PROFILES, REALISTIC

    # given: alice on the realistic model, BTC at 39,000 with 1 BTC a minute
    set_account_fill_model(user=user, profile=REALISTIC)
    with time_machine.travel(T0, tick=False):
        set_price("BTC", "39000", volume=VOLUME)

        # when: an ioc BUY of 0.2 at 40,000, more than the minute's share
        ioc = _order(user, "BUY", "0.2", order_price="40000", time_in_force="ioc")

    # then: its part filled as any order arriving does, at the ask (39,019.5) plus the slippage
    # of the part, under its limit, with the taker's fee
    assert ioc.status == "CANCELLED"
    assert 0 < ioc.filled_quantity < D("0.2")
    expected = PROFILES[REALISTIC].market_price(side="BUY", mid=D("39000"), quantity=ioc.filled_quantity, volume=VOLUME)
    assert D("39019.5") < expected < D("40000")
    assert ioc.executed_price == expected
    fee = AssetTransaction.objects.get(order=ioc, transaction_type="FEE").quantity
    assert -fee == (ioc.filled_quantity * D("0.0025")).quantize(D("0.00000001"), rounding="ROUND_CEILING")
    assert reconcile_ledger() == []
