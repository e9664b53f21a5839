"""Finding an order in the back office by the id prefix its lists show (8 hex digits, any case,
hyphens or not), in the order list and in both ledgers."""

from __future__ import annotations

import pytest

from core.admin import uuid_prefix_range

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
