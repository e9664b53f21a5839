"""Properties of the engine's order kinds over random inputs (hypothesis): a stop never fills
on the wrong side of its stop (nor a stop-limit past its limit), a notional BUY never costs
more than its notional, and replacing never leaves two live orders."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.exceptions import DomainError
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order, process_resting_orders, replace_order
from orders.validation import OrderChanges, OrderRequest

pytestmark = pytest.mark.django_db

D = Decimal
_people = itertools.count()

PROPERTY = hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
price = st.integers(4_000_000, 6_000_000).map(lambda cents: D(cents).scaleb(-2))  # 40000.00 to 60000.00


@PROPERTY
@given(
    order_type=st.sampled_from(["BUY", "SELL"]),
    stop=price,
    limit_offset=st.one_of(st.none(), st.integers(-300_000, 300_000).map(lambda cents: D(cents).scaleb(-2))),
    path=st.lists(price, min_size=1, max_size=8),
)
def test_a_stop_never_fills_on_the_wrong_side(make_user, btc, set_price, order_type, stop, limit_offset, path):
    # given a trader with cash and BTC, and a stop (or stop-limit) placed at 50000.00
    trader = make_user(f"stopper{next(_people)}")
    set_price("BTC", "50000")
    place_order(user=trader, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    limit = stop + limit_offset if limit_offset is not None else None
    placed = place_order(
        user=trader,
        request=OrderRequest(
            asset_id="BTC", order_type=order_type, quantity=D("0.01"), stop_price=stop, order_price=limit
        ),
    ).order
    prices = [D("50000")]

    # when the market walks and the processor runs at each step
    for step in path:
        set_price("BTC", str(step))
        process_resting_orders()
        prices.append(step)

    # then: a fill happened at a price where the stop had been reached, on its side of the stop
    # (a market stop) or of the limit (a stop-limit); an unfilled one was never triggered
    # unless the market reached its stop
    placed.refresh_from_db()
    reached = [p for p in prices if (p >= stop if order_type == "BUY" else p <= stop)]
    if placed.status == "COMPLETED":
        fill = placed.executed_price
        assert reached
        if limit is None:
            assert fill >= stop if order_type == "BUY" else fill <= stop
        else:
            assert fill <= limit if order_type == "BUY" else fill >= limit
    else:
        assert placed.status in {"PENDING", "FAILED"}
        assert (placed.triggered_at is not None) == bool(reached)
    assert reconcile_ledger() == []


@PROPERTY
@given(
    notional=st.integers(100, 900_000).map(lambda cents: D(cents).scaleb(-2)),  # 1.00 to 9000.00
    market=st.integers(1, 10_000_000_000).map(lambda tenths_of_cents: D(tenths_of_cents).scaleb(-3)),
    decimals=st.integers(0, 18),
)
def test_a_notional_buy_never_costs_more_than_its_notional(
    make_user, make_asset, set_price, notional, market, decimals
):
    # given an asset with a random step at a random price
    trader = make_user(f"spender{next(_people)}")
    asset = make_asset(f"N{next(_people)}", quantity_decimals=decimals)
    set_price(asset.asset_id, str(market))

    # when
    refused = None
    try:
        bought = place_order(
            user=trader, request=OrderRequest(asset_id=asset.asset_id, order_type="BUY", notional=notional)
        ).order
    except DomainError as error:  # less than one step, or below the minimum order value
        refused = error.code
    if refused is not None:
        assert refused == "validation_error"
        return

    # then: never more than the notional, and less than one more step's worth
    assert bought.status == "COMPLETED"
    assert bought.total_amount <= notional
    step = D(1).scaleb(-decimals)
    assert (bought.quantity + step) * market > notional
    assert reconcile_ledger() == []


edit = st.tuples(
    st.sampled_from(["replace_price", "replace_quantity", "market_moves"]),
    st.integers(4_500_000, 5_500_000).map(lambda cents: D(cents).scaleb(-2)),
)


@PROPERTY
@given(order_type=st.sampled_from(["BUY", "SELL"]), edits=st.lists(edit, min_size=1, max_size=8))
def test_replacing_never_leaves_two_live_orders(make_user, btc, set_price, order_type, edits):
    # given a resting limit order away from the market
    trader = make_user(f"replacer{next(_people)}")
    set_price("BTC", "50000")
    place_order(user=trader, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    away = D("45000") if order_type == "BUY" else D("55000")
    live = place_order(
        user=trader, request=OrderRequest(asset_id="BTC", order_type=order_type, quantity=D("0.01"), order_price=away)
    ).order

    for action, value in edits:
        # when
        refused = None
        try:
            if action == "market_moves":
                set_price("BTC", str(value))
                process_resting_orders()
            elif action == "replace_price":
                live = replace_order(order=Order.objects.get(pk=live.pk), changes=OrderChanges(order_price=value))
            else:
                live = replace_order(
                    order=Order.objects.get(pk=live.pk),
                    changes=OrderChanges(quantity=(value / D("1000000")).quantize(D("0.0001"))),
                )
        except DomainError as error:  # filled first (409), or the new hold does not fit
            refused = error.code
        assert refused in {None, "conflict", "insufficient_funds", "insufficient_asset", "validation_error"}

        # then: at most one order of the chain is alive, and the chain has no fork
        chain = Order.objects.filter(user=trader).exclude(order_type="BUY", order_price=None, stop_price=None)
        assert chain.filter(status="PENDING").count() <= 1
        for replaced in chain.filter(status="REPLACED"):
            assert Order.objects.get(pk=replaced.replaced_by_id).replaces_id == replaced.pk
        assert reconcile_ledger() == []
