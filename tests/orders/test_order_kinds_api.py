"""Order kinds over HTTP: stop orders, notional and time in force answered as placed; bad
input is 400 in the error shape and stores nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Order
from tests.support.api import error_code, post_json
from tests.support.balances import usd_balance_and_held

pytestmark = pytest.mark.django_db

D = Decimal
ORDERS = "/api/v1/orders/"


def test_a_stop_order_answers_its_kind_stop_price_and_hold(auth_client, user, btc_at_50k_eth_at_2500):
    response = post_json(
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
    response = post_json(auth_client, ORDERS, {"asset_id": "BTC", "order_type": "BUY", "notional": "250.00"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["notional"], body["quantity"], body["total_amount"]) == (
        "market",
        "250.00",
        "0.005",
        "250.00",
    )


def test_time_in_force_is_taken_in_any_case_and_an_unfilled_ioc_is_cancelled(auth_client, user, btc_at_50k_eth_at_2500):
    response = post_json(
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
def test_bad_order_kind_input_is_400_and_stores_nothing(auth_client, user, btc_at_50k_eth_at_2500, body):
    response = post_json(auth_client, ORDERS, body)
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"
    assert Order.objects.count() == 0
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))
