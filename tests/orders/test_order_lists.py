"""One selector and one filter for the order lists of both APIs (``orders.selectors.get_orders``
with ``orders.filters.OrderFilter``): /v2/orders translates Alpaca's query to the filter's
names; and closing every position is one service for both APIs. Over HTTP, every filter of
the list, its cursor pages, a bad filter, and staff filtering another user's orders."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import create_api_key, issue_token
from balances.models import AssetBalance
from core.exceptions import InvalidRequest
from orders.models import Order
from orders.selectors import get_orders
from orders.services import close_all_positions, place_order
from orders.validation import OrderRequest
from tests.support.api import error_code

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/v1/orders/"


@pytest.fixture
def three_orders(user, btc, eth, set_price):
    """A filled BTC buy, a resting ETH buy, a resting BTC sell, in that order."""
    set_price("BTC", "50000")
    set_price("ETH", "2500")
    made = [
        OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.02")),
        OrderRequest(asset_id="ETH", order_type="BUY", quantity=D("1"), order_price=D("2000")),
        OrderRequest(asset_id="BTC", order_type="SELL", quantity=D("0.01"), order_price=D("60000")),
    ]
    return [place_order(user=user, request=request).order for request in made]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [2, 1, 0]),
        ({"direction": "asc"}, [0, 1, 2]),
        ({"status": "open"}, [2, 1]),
        ({"status": "closed"}, [0]),
        ({"status": "completed"}, [0]),
        ({"asset_id": "btc"}, [2, 0]),
        ({"asset_id": "ETH,BTC"}, [2, 1, 0]),
        ({"asset_id": "FOO/USD"}, []),
        ({"order_type": "SELL"}, [2]),
        ({"kind": "limit"}, [2, 1]),
        ({"after": 0}, [2, 1]),
        ({"until": 1}, [1, 0]),
        ({"before": 1}, [0]),
    ],
)
def test_the_order_list_filters_by_each_of_its_names(user, three_orders, filters, expected):
    # given times named by the order created then
    filters = {
        name: three_orders[value].created_at.isoformat() if name in ("after", "until", "before") else value
        for name, value in filters.items()
    }

    # when
    with CaptureQueriesContext(connection) as captured:
        listed = list(get_orders(user=user, filters=filters))

    # then: one query
    assert [order.pk for order in listed] == [three_orders[i].pk for i in expected]
    assert len(captured.captured_queries) == 1


def test_a_filter_that_is_not_valid_names_itself(user):
    with pytest.raises(InvalidRequest) as raised:
        get_orders(user=user, filters={"status": "sleeping", "after": "yesterday"})

    assert set(raised.value.details) == {"status", "after"}


def test_both_apis_list_the_same_orders_for_the_same_question(user, three_orders, auth_client):
    # given alpaca's client on the same account
    key = create_api_key(user=user, name="bot")
    v2 = APIClient(HTTP_APCA_API_KEY_ID=key.api_key.key_id, HTTP_APCA_API_SECRET_KEY=key.secret_key)
    before = three_orders[1].created_at.isoformat()

    # when: BTC orders of any status created before the ETH buy, oldest first
    v1_ids = [
        o["order_id"]
        for o in auth_client.get("/api/v1/orders/", {"asset_id": "BTC", "before": before, "direction": "asc"}).json()[
            "results"
        ]
    ]
    v2_ids = [
        o["id"]
        for o in v2.get(
            "/v2/orders", {"status": "all", "symbols": "BTC/USD,NOPE/USD", "until": before, "direction": "asc"}
        ).json()
    ]

    # then
    assert v1_ids == v2_ids == [str(three_orders[0].pk)]


def test_closing_every_position_without_cancelling_sells_what_open_orders_do_not_hold(user, three_orders):
    # given 0.02 BTC, of which a resting SELL holds 0.01

    # when
    cancelled, closed = close_all_positions(user=user, cancel_orders=False)

    # then the resting orders stay, and the unheld 0.01 is sold
    assert cancelled == []
    assert [(c.asset_id, c.order.quantity, c.order.status, c.error) for c in closed] == [
        ("BTC", D("0.01"), "COMPLETED", None)
    ]
    assert Order.objects.filter(status="PENDING").count() == 2
    assert AssetBalance.objects.get(user=user, asset_id="BTC").quantity == D("0.01")


def test_closing_every_position_after_cancelling_sells_all_of_it(user, three_orders):
    # when
    cancelled, closed = close_all_positions(user=user, cancel_orders=True)

    # then
    assert [order.pk for order in cancelled] == [three_orders[1].pk, three_orders[2].pk]
    assert [(c.asset_id, c.order.quantity, c.order.status) for c in closed] == [("BTC", D("0.02"), "COMPLETED")]
    assert not Order.objects.filter(status="PENDING").exists()
    assert AssetBalance.objects.get(user=user, asset_id="BTC").quantity == D("0")


# --- the HTTP list's filters -------------------------------------------------------------------


@pytest.fixture
def history(user, btc_at_50k_eth_at_2500):
    """Five orders a minute apart: market BUY BTC, limit BUY ETH (resting), stop SELL BTC
    (resting), market BUY ETH with a client id, stop-limit BUY BTC (resting)."""
    start = timezone.now() - timedelta(minutes=10)
    specs = [
        {"asset_id": "BTC", "order_type": "BUY", "quantity": D("0.1")},
        {"asset_id": "ETH", "order_type": "BUY", "quantity": D("1"), "order_price": D("2000")},
        {"asset_id": "BTC", "order_type": "SELL", "quantity": D("0.05"), "stop_price": D("45000")},
        {"asset_id": "ETH", "order_type": "BUY", "quantity": D("0.5"), "client_order_id": "eth-1"},
        {
            "asset_id": "BTC",
            "order_type": "BUY",
            "quantity": D("0.01"),
            "stop_price": D("55000"),
            "order_price": D("56000"),
        },
    ]
    made = []
    for minute, spec in enumerate(specs):
        with time_machine.travel(start + timedelta(minutes=minute), tick=False):
            made.append(place_order(user=user, request=OrderRequest(**spec)).order)
    return start, made


def listed(client, **params) -> list[str]:
    response = client.get(ORDERS, params)
    assert response.status_code == 200, response.json()
    return [o["order_id"] for o in response.json()["results"]]


def ids(orders, *indexes) -> list[str]:
    return [str(orders[i].pk) for i in indexes]


def test_the_order_list_filters(auth_client, history):
    start, made = history
    assert listed(auth_client) == ids(made, 4, 3, 2, 1, 0)
    assert listed(auth_client, direction="asc") == ids(made, 0, 1, 2, 3, 4)
    assert listed(auth_client, client_order_id="eth-1") == ids(made, 3)
    assert listed(auth_client, after=(start + timedelta(minutes=1)).isoformat()) == ids(made, 4, 3, 2)
    assert listed(auth_client, until=(start + timedelta(minutes=1)).isoformat()) == ids(made, 1, 0)
    assert listed(auth_client, status="open") == ids(made, 4, 2, 1)
    assert listed(auth_client, status="closed") == ids(made, 3, 0)
    assert listed(auth_client, status="completed") == ids(made, 3, 0)
    assert listed(auth_client, asset_id="eth") == ids(made, 3, 1)
    assert listed(auth_client, asset_id="BTC,ETH") == ids(made, 4, 3, 2, 1, 0)
    assert listed(auth_client, order_type="sell") == ids(made, 2)
    assert listed(auth_client, kind="stop") == ids(made, 2)
    assert listed(auth_client, kind="STOP_LIMIT", status="open") == ids(made, 4)
    assert listed(auth_client, kind="market", direction="asc") == ids(made, 0, 3)


def test_cursor_pages_follow_the_direction(auth_client, history):
    _start, made = history
    first = auth_client.get(ORDERS, {"direction": "asc", "page_size": 2}).json()
    second = APIClient.get(auth_client, first["next"]).json()
    assert [o["order_id"] for o in first["results"] + second["results"]] == ids(made, 0, 1, 2, 3)


@pytest.mark.parametrize(
    "params", [{"direction": "sideways"}, {"after": "yesterday"}, {"status": "asleep"}, {"kind": "iceberg"}]
)
def test_a_bad_filter_is_400(auth_client, history, params):
    response = auth_client.get(ORDERS, params)
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_staff_filters_another_users_orders_too(api_client, staff_user, staff_groups, history):
    staff_user.groups.add(staff_groups["Support"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=staff_user).key}")
    response = api_client.get(ORDERS, {"username": "alice", "status": "open"})
    assert response.status_code == 200, response.json()
    assert len(response.json()["results"]) == 3
