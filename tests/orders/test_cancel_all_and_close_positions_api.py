"""Cancel-all and closing positions over HTTP: the happy path, another user's object is 404,
bad input is a 4xx in the error shape, and nothing moves on failure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances.models import AssetBalance
from orders.selectors import reconcile_ledger
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code, post_json
from tests.support.balances import usd_balance_and_held

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/v1/orders/"


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

    response = post_json(auth_client, f"{ORDERS}cancel-all/")

    assert response.status_code == 200, response.json()
    assert [(o["order_id"], o["status"]) for o in response.json()] == [(str(o.pk), "CANCELLED") for o in mine]
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))
    theirs.refresh_from_db()
    assert theirs.status == "PENDING"
    assert post_json(auth_client, f"{ORDERS}cancel-all/").json() == []


def test_cancel_all_answers_the_time_each_order_was_cancelled(auth_client, user, btc_at_50k_eth_at_2500):
    # given
    placed = [
        place_order(
            user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D(p))
        ).order
        for p in ("40000", "41000")
    ]

    # when
    answered = post_json(auth_client, f"{ORDERS}cancel-all/").json()

    # then: each answer is the order as it reads afterwards, updated after it was created
    assert answered == [auth_client.get(f"{ORDERS}{order.pk}/").json() for order in placed]
    assert all(order["updated_at"] > order["created_at"] for order in answered)


# --- closing positions ---------------------------------------------------------------------


def test_close_a_position_in_part_and_then_whole(auth_client, user, btc_at_50k_eth_at_2500):
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))

    half = post_json(auth_client, "/api/v1/asset-balances/btc/close/", {"percentage": "50"})
    assert half.status_code == 201, half.json()
    assert (half.json()["order_type"], half.json()["quantity"], half.json()["status"]) == ("SELL", "0.05", "COMPLETED")

    rest = post_json(auth_client, "/api/v1/asset-balances/BTC/close/")
    assert (rest.status_code, rest.json()["quantity"]) == (201, "0.05")
    assert AssetBalance.objects.get(user=user, asset_id="BTC").quantity == 0
    assert reconcile_ledger() == []


def test_closing_a_position_not_held_is_404(auth_client, user, other_user, btc_at_50k_eth_at_2500):
    place_order(user=other_user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    response = post_json(auth_client, "/api/v1/asset-balances/BTC/close/")
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
    response = post_json(auth_client, "/api/v1/asset-balances/BTC/close/", body)
    assert (response.status_code, error_code(response)) == (status, code)
    assert AssetBalance.objects.get(user=user).quantity == D("0.1")


def test_close_all_cancels_then_closes_and_says_what_happened_per_asset(auth_client, user, btc_at_50k_eth_at_2500):
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=D("1")))
    resting = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=D("0.1"), order_price=D("60000"))
    ).order

    response = post_json(auth_client, "/api/v1/asset-balances/close-all/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert [o["order_id"] for o in body["cancelled"]] == [str(resting.pk)]
    assert [(c["asset_id"], c["status"], c["order"]["quantity"], c["error"]) for c in body["closed"]] == [
        ("BTC", 201, "0.1", None),
        ("ETH", 201, "1", None),
    ]
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))


def test_closing_needs_authentication(api_client):
    response = post_json(api_client, "/api/v1/asset-balances/close-all/")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")
