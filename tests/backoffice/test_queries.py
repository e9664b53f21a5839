"""No N+1 on any changelist: the page costs the same number of queries for 1 row as for 20."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest
from tests.backoffice.changelists import BACK_OFFICE_CHANGELISTS


@pytest.fixture
def add_traders(make_user, make_asset, operations_user):
    """Trader ``i`` buys asset ``i`` at market and then rests a limit order: every list
    gets rows with distinct users and assets (where an N+1 would show), and adjustments
    and a reset by Operations give ledger rows an actor."""
    from balances.services import adjust_usd_balance
    from orders.services import reset_account

    made = 0

    def add(count: int) -> None:
        nonlocal made
        for i in range(made, made + count):
            asset = make_asset(f"A{i:02d}", reference_price=Decimal("100"))
            user = make_user(f"trader{i:02d}")
            place_order(
                user=user,
                request=OrderRequest(asset_id=asset.asset_id, order_type=Order.Type.BUY, quantity=Decimal("1")),
            )
            adjust_usd_balance(user=user, amount=Decimal("1.00"), reason="welcome", actor=operations_user)
            reset_account(user=user, cash=Decimal("5000.00"), actor=operations_user, reason="contest")
            place_order(
                user=user,
                request=OrderRequest(asset_id=asset.asset_id, order_type=Order.Type.BUY, quantity=Decimal("1")),
            )
        made += count

    return add


# Session, user, the page's counts and rows, and what the page shows beside them (filters'
# choices, related rows in one query each, the last good prices of the page's assets in one):
# the same for 1 row as for 20.
QUERIES = {
    "admin:auth_user_changelist": 6,
    "admin:assets_asset_changelist": 6,
    "admin:orders_order_changelist": 8,
    "admin:balances_usdbalance_changelist": 5,
    "admin:balances_assetbalance_changelist": 7,
    "admin:balances_cashtransaction_changelist": 7,
    "admin:balances_assettransaction_changelist": 9,
    "admin:balances_accountreset_changelist": 7,
}
# Support staff are not superusers: their permissions cost two queries more.
SUPPORT_QUERIES = {"admin:orders_order_changelist": 10, "admin:auth_user_changelist": 8}


def _rows(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200
    return response.context["cl"].result_count


@pytest.mark.parametrize("url_name", BACK_OFFICE_CHANGELISTS)
def test_changelist_costs_the_same_queries_for_1_and_20_rows(
    superuser_client, add_traders, url_name, django_assert_num_queries
):
    # given
    url = reverse(url_name)
    add_traders(1)
    superuser_client.get(url)  # warm the prices (the first read asks the provider) and the session
    with django_assert_num_queries(QUERIES[url_name]):
        few = _rows(superuser_client, url)

    # when
    add_traders(19)
    superuser_client.get(url)

    # then
    with django_assert_num_queries(QUERIES[url_name]):
        assert _rows(superuser_client, url) > few


@pytest.mark.parametrize("url_name", SUPPORT_QUERIES)
def test_support_changelists_are_flat_too(support_client, add_traders, url_name, django_assert_num_queries):
    url = reverse(url_name)
    add_traders(1)
    support_client.get(url)
    with django_assert_num_queries(SUPPORT_QUERIES[url_name]):
        _rows(support_client, url)
    add_traders(19)
    support_client.get(url)
    with django_assert_num_queries(SUPPORT_QUERIES[url_name]):
        _rows(support_client, url)
