"""Replacing an order over HTTP (PATCH): the happy path, another user's order is 404, bad input
is a 4xx in the error shape, and nothing moves on failure."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

import pytest

from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code
from tests.support.balances import usd_balance_and_held

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/v1/orders/"


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
