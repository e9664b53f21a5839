"""What a support agent met on a first day in the back office (issue 13): lists that show
8-digit order ids the search could not find, a "Reset password" button that led to a 403,
an invisible row link, a garbled cancel message, and titles with 18 trailing zeros."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from core.admin import uuid_prefix_range
from orders.models import Order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("typed", ["short", "with-hyphens", "upper", "whole"])
def test_order_search_finds_an_order_by_the_id_prefix_the_list_shows(support_client, resting_buy, typed):
    # given the list shows the first 8 hex digits of the id
    full = str(resting_buy.pk)
    term = {"short": full[:8], "with-hyphens": full[:13], "upper": full[:8].upper(), "whole": full}[typed]
    # when
    response = support_client.get("/admin/orders/order/", {"q": term})
    # then
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [resting_buy]


def test_an_id_prefix_matches_only_the_orders_that_start_with_it(support_client, resting_buy, completed_buy):
    response = support_client.get("/admin/orders/order/", {"q": str(completed_buy.pk)[:8]})
    assert list(response.context["cl"].result_list) == [completed_buy]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0b2144dd", ("0b2144dd-0000-0000-0000-000000000000", "0b2144dd-ffff-ffff-ffff-ffffffffffff")),
        (" 0B21-44 ", ("0b214400-0000-0000-0000-000000000000", "0b2144ff-ffff-ffff-ffff-ffffffffffff")),
        ("abc", None),  # too short: would list a sixteenth of everything
        ("carol", None),
        ("0b2144dd" * 5, None),
        ("", None),
    ],
)
def test_uuid_prefix_range(text, expected):
    bounds = uuid_prefix_range(text)
    assert (None if bounds is None else tuple(str(b) for b in bounds)) == expected


def test_the_ledgers_are_found_by_their_orders_id_prefix(support_client, completed_buy):
    response = support_client.get("/admin/balances/cashtransaction/", {"q": str(completed_buy.pk)[:8]})
    assert [row.order_id for row in response.context["cl"].result_list] == [completed_buy.pk]


def test_support_sees_no_password_button_it_may_not_use(support_client, customer):
    response = support_client.get(f"/admin/auth/user/{customer.pk}/change/")
    assert response.status_code == 200
    assert "Reset password" not in response.content.decode()
    assert support_client.get(f"/admin/auth/user/{customer.pk}/password/").status_code == 403


def test_a_superuser_still_resets_passwords(superuser_client, customer):
    response = superuser_client.get(f"/admin/auth/user/{customer.pk}/change/")
    assert "Reset password" in response.content.decode()


@pytest.mark.parametrize(
    ("path", "linked"),
    [("/admin/balances/usdbalance/", "usdbalance"), ("/admin/balances/assetbalance/", "assetbalance")],
)
def test_balance_rows_link_to_their_balance_with_visible_text(support_client, completed_buy, path, linked):
    # given carol's balances; when
    html = support_client.get(path).content.decode()
    # then every link to a balance page has text (not an anchor wrapped around the user link)
    links = re.findall(rf'<a href="/admin/balances/{linked}/\d+/change/[^"]*">([^<]*)</a>', html)
    assert links
    assert all(text.strip() for text in links)


def test_the_cancel_action_names_each_refused_order_and_its_status(support_client, completed_buy, resting_buy):
    # when Support cancels a completed and a pending order at once
    response = support_client.post(
        "/admin/orders/order/",
        {"action": "cancel_pending_orders", "_selected_action": [completed_buy.pk, resting_buy.pk]},
        follow=True,
    )
    # then
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"Cancelled 1 order(s), holds released: {str(resting_buy.pk)[:8]}.",
        f"Not cancelled, only PENDING orders can be: {str(completed_buy.pk)[:8]} (COMPLETED).",
    ]


def test_order_titles_have_no_trailing_zeros(resting_buy):
    assert str(resting_buy) == "BUY 0.01 BTC (PENDING)"
    assert str(Order(order_type="SELL", quantity=Decimal("10.000"), asset_id="ETH", status="FAILED")) == (
        "SELL 10 ETH (FAILED)"
    )
