"""One transaction convention for every entry point: a service owns its transaction
(``atomic(durable=True)``), so it refuses to run inside a caller's, for buys and sells alike
(the market buy's single statement included), and leaves nothing behind when it refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("order_type", "order_price"),
    [("BUY", None), ("BUY", Decimal("40000")), ("SELL", None), ("SELL", Decimal("60000"))],
)
def test_place_order_refuses_to_run_inside_a_callers_transaction(user, btc, set_price, order_type, order_price):
    # given
    set_price("BTC", "50000")

    # when / then
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        place_order(
            user=user,
            request=OrderRequest(
                asset_id="BTC", order_type=order_type, quantity=Decimal("0.01"), order_price=order_price
            ),
        )
    assert Order.objects.count() == 0
