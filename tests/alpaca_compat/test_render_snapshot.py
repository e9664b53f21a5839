"""A trade update's order is rendered from the event's snapshot, without building the order:
for any order it must read exactly as ``GET /v2/orders/{id}`` renders the order itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alpaca_compat import render
from orders.events import order_snapshot
from orders.models import Order

# Times in any zone, with and without microseconds (the snapshot always writes six decimals).
times = st.builds(
    lambda moment, micro, hours: moment.replace(microsecond=micro).astimezone(timezone(timedelta(hours=hours))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([0, 1, 500000, 999999]),
    st.integers(min_value=-12, max_value=14),
)


def decimals(places: int, *, most: str = "1000000") -> st.SearchStrategy[Decimal]:
    # As the columns hold them: a fixed scale, so with trailing zeros.
    return st.decimals(min_value=0, max_value=Decimal(most), places=places).map(
        lambda value: value.quantize(Decimal(1).scaleb(-places))
    )


def maybe(strategy):
    return st.none() | strategy


orders = st.builds(
    Order,
    order_id=st.uuids(),
    user_id=st.integers(min_value=1, max_value=10**6),
    asset_id=st.sampled_from(["BTC", "ETH", "DOGE"]),
    order_type=st.sampled_from(Order.Type.values),
    quantity=decimals(18, most="100000").filter(bool),
    order_price=maybe(decimals(12).filter(bool)),
    total_amount=maybe(decimals(2)),
    executed_price=maybe(decimals(12)),
    filled_quantity=decimals(18, most="100000"),
    held_amount=decimals(2),
    stop_price=maybe(decimals(12).filter(bool)),
    triggered_at=maybe(times),
    notional=maybe(decimals(2).filter(bool)),
    time_in_force=st.sampled_from(Order.TimeInForce.values),
    replaces_id=maybe(st.uuids()),
    replaced_by_id=maybe(st.uuids()),
    status=st.sampled_from(Order.Status.values),
    failure_reason=st.text(max_size=5),
    failure_code=st.text(max_size=5),
    client_order_id=maybe(st.text(max_size=64)),
    expires_at=maybe(times),
    created_at=times,
    updated_at=times,
    filled_at=maybe(times),
    placed_via=st.sampled_from(Order.PlacedVia.values),
    api_key_id=maybe(st.integers(min_value=1)),
    actor_id=maybe(st.integers(min_value=1)),
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(order=orders)
def test_an_order_renders_from_its_snapshot_as_from_the_order(order):
    assert render.order_json_of_snapshot(order_snapshot(order)) == render.order_json(order)


def test_a_partly_filled_order_and_a_notional_one_read_the_same_both_ways():
    # given: the cases whose fields depend on others (status, qty, notional's cents)
    at = datetime(2026, 11, 27, 17, 52, 5, tzinfo=UTC)
    partly = Order(
        order_id=uuid.uuid4(),
        user_id=1,
        asset_id="BTC",
        order_type=Order.Type.BUY,
        quantity=Decimal("0.020000"),
        filled_quantity=Decimal("0.010000"),
        order_price=Decimal("50000.000"),
        status=Order.Status.PENDING,
        notional=Decimal("1000.50"),
        created_at=at,
        updated_at=at,
        placed_via=Order.PlacedVia.ALPACA,
    )
    # when
    from_snapshot = render.order_json_of_snapshot(order_snapshot(partly))
    # then
    assert from_snapshot == render.order_json(partly)
    assert (from_snapshot["status"], from_snapshot["qty"], from_snapshot["notional"]) == (
        "partially_filled",
        None,
        "1000.50",
    )
    assert from_snapshot["created_at"] == "2026-11-27T17:52:05Z"
