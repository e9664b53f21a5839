"""THROTTLE_ORDER_RATE counts every request that changes orders, on both APIs: placing,
replacing, cancelling and closing positions, whatever the method; reads count only against
the user rate."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from rest_framework.test import APIClient

from accounts.services import create_api_key
from balances.services import deposit
from orders.services import place_order
from orders.validation import OrderRequest

pytestmark = pytest.mark.usefixtures("throttle_clock_frozen")


@pytest.fixture
def resting_order(user, btc, set_price):
    """A holding to close and a resting limit BUY to replace or cancel, made without the API
    (so that no request has counted yet), and a rate of one order request a minute."""
    set_price("BTC", "50000")
    deposit(user=user, amount=D("10000.00"))
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01")))
    return place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000"))
    ).order


@pytest.fixture
def clients(user, auth_client):
    new = create_api_key(user=user, name="bot")
    alpaca = APIClient(HTTP_APCA_API_KEY_ID=new.api_key.key_id, HTTP_APCA_API_SECRET_KEY=new.secret_key)
    return {"api": auth_client, "alpaca": alpaca}


@pytest.mark.parametrize(
    ("api", "method", "path", "body", "read"),
    [
        ("api", "patch", "/api/v1/orders/{id}/", {"quantity": "0.02"}, "/api/v1/orders/{id}/"),
        ("api", "post", "/api/v1/orders/{id}/cancel/", None, "/api/v1/orders/"),
        ("api", "post", "/api/v1/asset-balances/BTC/close/", {}, "/api/v1/asset-balances/"),
        ("api", "post", "/api/v1/account/reset/", {}, "/api/v1/balance/"),
        (
            "alpaca",
            "post",
            "/v2/orders",
            {"symbol": "BTC/USD", "qty": "0.01", "side": "buy", "type": "market", "time_in_force": "gtc"},
            "/v2/orders",
        ),
        ("alpaca", "patch", "/v2/orders/{id}", {"qty": "0.02"}, "/v2/orders/{id}"),
        ("alpaca", "delete", "/v2/orders/{id}", None, "/v2/orders/{id}"),
        ("alpaca", "delete", "/v2/orders", None, "/v2/orders"),
        ("alpaca", "delete", "/v2/positions/BTCUSD", None, "/v2/positions"),
        ("alpaca", "delete", "/v2/positions", None, "/v2/positions"),
    ],
)
def test_every_request_that_changes_orders_counts_against_the_order_rate(
    clients, resting_order, throttle_rates, api, method, path, body, read
):
    # given one order request a minute
    throttle_rates(user="100/min", orders="1/min")
    client, url = clients[api], path.format(id=resting_order.order_id)

    # when the same request comes twice, with reads around it
    first = getattr(client, method)(url, body, format="json")
    second = getattr(client, method)(url, body, format="json")
    reads = [client.get(read.format(id=resting_order.order_id)).status_code for _ in range(2)]

    # then the first went through, the second was over the order rate, and reads were not
    assert first.status_code < 400, first.content
    assert second.status_code == 429, second.content
    assert reads == [200, 200]
