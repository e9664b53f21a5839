"""alpaca-py with an API key across a password change: a kept key still trades, an ended one
is Alpaca's 401 and places nothing."""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from rest_framework.test import APIClient

from accounts.services import issue_token
from orders.models import Order

PASSWORD = "correct-horse-battery"  # the make_user fixture's


def change_password(user, *, keep_api_keys: bool):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    body = {"old_password": PASSWORD, "new_password": "another-long-passphrase-43", "keep_api_keys": keep_api_keys}
    response = client.post("/api/v1/auth/password/", body, format="json")
    assert response.status_code == 200
    return response.json()


def buy(trading):
    return trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )


def test_a_kept_key_still_trades_with_alpaca_py_after_a_password_change(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")

    # when
    answer = change_password(user, keep_api_keys=True)
    order = buy(trading)

    # then
    assert answer["api_keys_kept"] == 1
    assert order.status == OrderStatus.FILLED
    assert Order.objects.get(pk=order.id).user == user


def test_a_key_ended_by_a_password_change_is_alpacas_401_and_places_nothing(trading, user, btc, set_price):
    # given
    set_price("BTC", "50000")

    # when
    change_password(user, keep_api_keys=False)
    with pytest.raises(APIError) as raised:
        buy(trading)

    # then
    assert (raised.value.status_code, raised.value.code) == (401, 40110000)
    assert not Order.objects.exists()
