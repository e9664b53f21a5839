"""What a support agent sees of SPEC 11's orders: the kind, the stop price and trigger, time
in force, notional, and the replace chain as links both ways."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.services import place_order, replace_order

pytestmark = pytest.mark.django_db


def test_an_order_page_shows_its_kind_stop_and_replace_chain(support_client, make_user, btc, set_price):
    # given a stop-limit, replaced by another
    set_price("BTC", "50000")
    trader = make_user("trader")
    old = place_order(
        user=trader,
        asset_id="BTC",
        order_type="BUY",
        quantity=Decimal("0.01"),
        stop_price=Decimal("60000"),
        order_price=Decimal("61000"),
    ).order
    new = replace_order(order=old, stop_price=Decimal("62000"), order_price=Decimal("63000"))

    # when
    old_page = support_client.get(reverse("admin:orders_order_change", args=[old.pk])).content.decode()
    new_page = support_client.get(reverse("admin:orders_order_change", args=[new.pk])).content.decode()
    listing = support_client.get(reverse("admin:orders_order_changelist")).content.decode()

    # then
    assert tuple(t for t in ("stop_limit", "61000", "60000") if t in old_page) == ("stop_limit", "61000", "60000")
    assert (
        f'replaced by <a href="{reverse("admin:orders_order_change", args=[new.pk])}">{str(new.pk)[:8]}</a>' in old_page
    )
    assert f'replaces <a href="{reverse("admin:orders_order_change", args=[old.pk])}">{str(old.pk)[:8]}</a>' in new_page
    # the list shows the kind (the stop price is on the order's page: the list fits 1,400 px)
    assert listing.count("stop_limit") == 2
