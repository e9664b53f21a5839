"""The brokerage features over HTTP: stop orders, notional, time in force, replace (PATCH), cancel-all,
closing positions and the order list's filters. Every endpoint: the happy path, another
user's object is 404, bad input is a 4xx in the error shape, and nothing moves on failure."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import issue_token
from balances.models import AssetBalance
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order
from orders.validation import OrderRequest
from tests.api_helpers import error_code
from tests.support.balances import usd_balance_and_held

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/v1/orders/"


def post(client, path: str, body: dict | None = None):
    return client.post(path, body or {}, format="json")


# --- placing ------------------------------------------------------------------------------


def test_a_stop_order_answers_its_kind_stop_price_and_hold(auth_client, user, btc_at_50k_eth_at_2500):
    response = post(
        auth_client, ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "stop_price": "60000"}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["stop_price"], body["order_price"], body["time_in_force"]) == (
        "stop",
        "60000",
        None,
        "gtc",
    )
    assert (body["status"], body["held_amount"], body["triggered_at"]) == ("PENDING", "630.00", None)
    assert (body["replaces"], body["replaced_by"], body["notional"]) == (None, None, None)


def test_a_notional_buy_answers_the_quantity_it_bought(auth_client, user, btc_at_50k_eth_at_2500):
    response = post(auth_client, ORDERS, {"asset_id": "BTC", "order_type": "BUY", "notional": "250.00"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["notional"], body["quantity"], body["total_amount"]) == (
        "market",
        "250.00",
        "0.005",
        "250.00",
    )


def test_time_in_force_is_taken_in_any_case_and_an_unfilled_ioc_is_cancelled(auth_client, user, btc_at_50k_eth_at_2500):
    response = post(
        auth_client,
        ORDERS,
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "40000", "time_in_force": "IOC"},
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["status"], response.json()["time_in_force"]) == ("CANCELLED", "ioc")
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))


@pytest.mark.parametrize(
    "body",
    [
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "notional": "100"},
        {"asset_id": "BTC", "order_type": "BUY", "notional": "100", "order_price": "40000"},
        {"asset_id": "BTC", "order_type": "BUY"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "stop_price": "-1"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "time_in_force": "day"},
        {"asset_id": "BTC", "order_type": "BUY", "notional": "0.001"},
    ],
)
def test_bad_brokerage_orders_are_400_and_store_nothing(auth_client, user, btc_at_50k_eth_at_2500, body):
    response = post(auth_client, ORDERS, body)
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"
    assert Order.objects.count() == 0
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))


# --- replace ------------------------------------------------------------------------------


def test_patch_replaces_a_pending_order(auth_client, user, btc_at_50k_eth_at_2500):
    # given
    old = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000"))
    ).order

    # when
    response = auth_client.patch(f"{ORDERS}{old.pk}/", {"order_price": "42000"}, format="json")

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["replaces"], body["order_price"], body["quantity"], body["held_amount"], body["status"]) == (
        str(old.pk),
        "42000",
        "0.01",
        "420.00",
        "PENDING",
    )
    replaced = auth_client.get(f"{ORDERS}{old.pk}/").json()
    assert (replaced["status"], replaced["replaced_by"]) == ("REPLACED", body["order_id"])
    assert usd_balance_and_held(user) == (D("10000.00"), D("420.00"))
    assert reconcile_ledger() == []


def test_patch_of_a_filled_order_is_409(auth_client, user, btc_at_50k_eth_at_2500):
    filled = place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"))).order
    response = auth_client.patch(f"{ORDERS}{filled.pk}/", {"order_price": "42000"}, format="json")
    assert response.status_code == 409
    assert error_code(response) == "conflict"


def test_patch_of_another_users_order_is_404(auth_client, other_user, btc_at_50k_eth_at_2500):
    theirs = place_order(
        user=other_user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000")),
    ).order
    response = auth_client.patch(f"{ORDERS}{theirs.pk}/", {"order_price": "42000"}, format="json")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    theirs.refresh_from_db()
    assert theirs.status == "PENDING"


@pytest.mark.parametrize("body", [{}, {"quantity": "-1"}, {"colour": "red"}, {"order_price": "abc"}])
def test_patch_with_bad_input_is_400_and_replaces_nothing(auth_client, user, btc_at_50k_eth_at_2500, body):
    old = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000"))
    ).order
    response = auth_client.patch(f"{ORDERS}{old.pk}/", body, format="json")
    assert response.status_code == 400, response.json()
    assert error_code(response) in {"validation_error", "unknown_field"}
    old.refresh_from_db()
    assert (old.status, Order.objects.count()) == ("PENDING", 1)


def test_patch_beyond_the_balance_is_422(auth_client, user, btc_at_50k_eth_at_2500):
    old = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000"))
    ).order
    response = auth_client.patch(f"{ORDERS}{old.pk}/", {"quantity": "1"}, format="json")
    assert response.status_code == 422
    assert error_code(response) == "insufficient_funds"
    assert usd_balance_and_held(user) == (D("10000.00"), D("400.00"))


def test_the_browsable_patch_form_sent_back_with_one_change_replaces_the_order(
    api_client, user, btc_at_50k_eth_at_2500
):
    # given a stop loss with a client_order_id, and its page in the browser (a session login)
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01")))
    old = place_order(
        user=user,
        request=OrderRequest(
            asset_id="BTC", order_type="SELL", quantity=D("0.01"), stop_price=D("45000"), client_order_id="s-2"
        ),
    ).order
    api_client.force_login(user)
    page = api_client.get(f"{ORDERS}{old.pk}/", HTTP_ACCEPT="text/html").content.decode()
    prefilled = json.loads(html.unescape(re.search(r'<textarea name="_content"[^>]*>(.*?)</textarea>', page, re.S)[1]))

    # when: only the stop price is changed, and the form sent with the PATCH button
    response = api_client.patch(f"{ORDERS}{old.pk}/", {**prefilled, "stop_price": "44000"}, format="json")

    # then: the form held the order's values and no nulls, and the replace kept the rest
    assert prefilled == {"quantity": "0.01", "stop_price": "45000", "time_in_force": "gtc"}
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["replaces"], body["kind"], body["stop_price"], body["quantity"], body["client_order_id"]) == (
        str(old.pk),
        "stop",
        "44000",
        "0.01",
        None,
    )


# --- cancel all ---------------------------------------------------------------------------


def test_cancel_all_lists_what_it_cancelled_and_leaves_other_users_alone(
    auth_client, user, other_user, btc_at_50k_eth_at_2500
):
    mine = [
        place_order(
            user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D(p))
        ).order
        for p in ("40000", "41000")
    ]
    theirs = place_order(
        user=other_user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000")),
    ).order

    response = post(auth_client, f"{ORDERS}cancel-all/")

    assert response.status_code == 200, response.json()
    assert [(o["order_id"], o["status"]) for o in response.json()] == [(str(o.pk), "CANCELLED") for o in mine]
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))
    theirs.refresh_from_db()
    assert theirs.status == "PENDING"
    assert post(auth_client, f"{ORDERS}cancel-all/").json() == []


def test_cancel_all_answers_the_time_each_order_was_cancelled(auth_client, user, btc_at_50k_eth_at_2500):
    # given
    placed = [
        place_order(
            user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D(p))
        ).order
        for p in ("40000", "41000")
    ]

    # when
    answered = post(auth_client, f"{ORDERS}cancel-all/").json()

    # then: each answer is the order as it reads afterwards, updated after it was created
    assert answered == [auth_client.get(f"{ORDERS}{order.pk}/").json() for order in placed]
    assert all(order["updated_at"] > order["created_at"] for order in answered)


# --- closing positions ---------------------------------------------------------------------


def test_close_a_position_in_part_and_then_whole(auth_client, user, btc_at_50k_eth_at_2500):
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))

    half = post(auth_client, "/api/v1/asset-balances/btc/close/", {"percentage": "50"})
    assert half.status_code == 201, half.json()
    assert (half.json()["order_type"], half.json()["quantity"], half.json()["status"]) == ("SELL", "0.05", "COMPLETED")

    rest = post(auth_client, "/api/v1/asset-balances/BTC/close/")
    assert (rest.status_code, rest.json()["quantity"]) == (201, "0.05")
    assert AssetBalance.objects.get(user=user, asset_id="BTC").quantity == 0
    assert reconcile_ledger() == []


def test_closing_a_position_not_held_is_404(auth_client, user, other_user, btc_at_50k_eth_at_2500):
    place_order(user=other_user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    response = post(auth_client, "/api/v1/asset-balances/BTC/close/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert AssetBalance.objects.get(user=other_user).quantity == D("0.1")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"percentage": "101"}, 400, "validation_error"),
        ({"quantity": "1"}, 422, "insufficient_asset"),
        ({"quantity": "0.01", "percentage": "5"}, 400, "validation_error"),
        ({"share": "all"}, 400, "unknown_field"),
    ],
)
def test_closing_with_bad_input_moves_nothing(auth_client, user, btc_at_50k_eth_at_2500, body, status, code):
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    response = post(auth_client, "/api/v1/asset-balances/BTC/close/", body)
    assert (response.status_code, error_code(response)) == (status, code)
    assert AssetBalance.objects.get(user=user).quantity == D("0.1")


def test_close_all_cancels_then_closes_and_says_what_happened_per_asset(auth_client, user, btc_at_50k_eth_at_2500):
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=D("1")))
    resting = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=D("0.1"), order_price=D("60000"))
    ).order

    response = post(auth_client, "/api/v1/asset-balances/close-all/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert [o["order_id"] for o in body["cancelled"]] == [str(resting.pk)]
    assert [(c["asset_id"], c["status"], c["order"]["quantity"], c["error"]) for c in body["closed"]] == [
        ("BTC", 201, "0.1", None),
        ("ETH", 201, "1", None),
    ]
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))


def test_closing_needs_authentication(api_client):
    response = post(api_client, "/api/v1/asset-balances/close-all/")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


# --- the list's filters -------------------------------------------------------------------


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
