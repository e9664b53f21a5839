"""No N+1 on any changelist: the page costs the same number of queries for 1 row as for 20."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Order
from orders.services import place_order
from tests.admin.changelists import BACK_OFFICE_CHANGELISTS


@pytest.fixture
def add_traders(make_user, make_asset, operations_user):
    """Trader ``i`` buys asset ``i`` at market and then rests a limit order: every list
    gets rows with distinct users and assets (where an N+1 would show), and adjustments
    give ledger rows an actor."""
    from balances.services import adjust_usd_balance

    made = 0

    def add(count: int) -> None:
        nonlocal made
        for i in range(made, made + count):
            asset = make_asset(f"A{i:02d}", reference_price=Decimal("100"))
            user = make_user(f"trader{i:02d}")
            place_order(user=user, asset_id=asset.asset_id, order_type=Order.Type.BUY, quantity=Decimal("1"))
            adjust_usd_balance(user=user, amount=Decimal("1.00"), reason="welcome", actor=operations_user)
        made += count

    return add


def _queries(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured), response.context["cl"].result_count


@pytest.mark.parametrize("url_name", BACK_OFFICE_CHANGELISTS)
def test_changelist_query_count_does_not_grow_with_rows(superuser_client, add_traders, url_name):
    # given
    url = reverse(url_name)
    add_traders(1)
    superuser_client.get(url)  # warm the price cache and the session
    few, few_rows = _queries(superuser_client, url)

    # when
    add_traders(19)
    superuser_client.get(url)
    many, many_rows = _queries(superuser_client, url)

    # then
    assert many_rows > few_rows
    assert many == few


@pytest.mark.parametrize("url_name", ["admin:orders_order_changelist", "admin:auth_user_changelist"])
def test_support_changelists_are_flat_too(support_client, add_traders, url_name):
    url = reverse(url_name)
    add_traders(1)
    support_client.get(url)
    few, _ = _queries(support_client, url)
    add_traders(19)
    support_client.get(url)
    many, _ = _queries(support_client, url)
    assert many == few
