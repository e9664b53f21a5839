"""One value for a request (``OrderRequest``) and one for where it came from
(``OrderOrigin``): a repeated client_order_id is compared field by field over the value
itself, so a field added to it cannot be left out of the comparison."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import create_api_key
from core.exceptions import Conflict
from orders.models import Order
from orders.services import place_order
from orders.validation import OrderOrigin, OrderRequest

pytestmark = pytest.mark.django_db

D = Decimal

# A resting stop-limit BUY (BTC at 50000), a market BUY for 100 USD, and for each field of a
# request the one of them to change and a value that makes another order of it. A field
# added to OrderRequest must be given one here.
RESTING = OrderRequest(
    asset_id="BTC",
    order_type="BUY",
    quantity=D("0.01"),
    order_price=D("40000"),
    stop_price=D("60000"),
    expires_at=None,
    client_order_id="c-1",
)
BY_NOTIONAL = OrderRequest(asset_id="BTC", order_type="BUY", notional=D("100.00"), client_order_id="c-1")
ANOTHER = {
    "asset_id": (RESTING, "ETH"),
    "order_type": (RESTING, "SELL"),
    "quantity": (RESTING, D("0.02")),
    "notional": (BY_NOTIONAL, D("200.00")),
    "order_price": (RESTING, D("41000")),
    "stop_price": (RESTING, D("61000")),
    "time_in_force": (RESTING, "fok"),
    "expires_at": (RESTING, "in a day"),
}


def test_every_field_of_a_request_but_its_key_has_a_different_value_below():
    names = {field.name for field in dataclasses.fields(OrderRequest)}

    assert names - {"client_order_id"} == set(ANOTHER)


@pytest.mark.parametrize("field", sorted(ANOTHER))
def test_a_repeated_client_order_id_differing_in_any_one_field_is_a_conflict_that_moves_nothing(
    user, btc, eth, set_price, field
):
    # given an order placed with the key
    set_price("BTC", "50000")
    set_price("ETH", "2500")
    request, other = ANOTHER[field]
    original = place_order(user=user, request=request).order
    if field == "expires_at":
        other = timezone.now() + timedelta(days=1)

    # when the same key comes with this one field changed
    with pytest.raises(Conflict) as raised:
        place_order(user=user, request=dataclasses.replace(request, **{field: other}))

    # then
    assert raised.value.details == {"client_order_id": "c-1", "order_id": str(original.pk)}
    assert list(Order.objects.values_list("pk", flat=True)) == [original.pk]


def test_the_same_request_again_is_the_first_order_with_the_expiry_it_was_given_by_default(user, btc, set_price):
    # given
    set_price("BTC", "50000")
    first = place_order(user=user, request=RESTING)

    # when: sent again as it was, without an expiry (it got the default)
    again = place_order(user=user, request=RESTING)

    # then
    assert (first.created, again.created, again.order.pk) == (True, False, first.order.pk)


def test_the_origin_of_an_order_is_stored_with_it(user, btc, set_price):
    # given
    set_price("BTC", "50000")
    key = create_api_key(user=user, name="bot").api_key

    # when
    placed = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01")),
        origin=OrderOrigin(placed_via=Order.PlacedVia.ALPACA, api_key=key),
    )

    # then
    stored = Order.objects.get(pk=placed.order.pk)
    assert (stored.asset_id, stored.placed_via, stored.api_key_id) == ("BTC", "alpaca", key.pk)
