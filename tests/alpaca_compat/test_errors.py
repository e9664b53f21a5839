"""Bad input to the Alpaca endpoints: always Alpaca's error shape, a 4xx, and nothing stored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orders.models import Order


@pytest.fixture
def alpaca_client(credentials) -> APIClient:
    key_id, secret = credentials
    return APIClient(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)


MARKET_BUY = {"symbol": "BTC/USD", "qty": "0.01", "side": "buy", "type": "market", "time_in_force": "gtc"}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({**MARKET_BUY, "qty": "abc"}, 40010000, "qty: Write a plain decimal number"),
        ({**MARKET_BUY, "qty": None}, 40010000, "qty or notional is required"),
        ({**MARKET_BUY, "side": None}, 40010000, "side is required"),
        ({**MARKET_BUY, "side": "short"}, 40010000, 'side must be buy or sell, not "short"'),
        ({**MARKET_BUY, "time_in_force": "day"}, 40010000, "invalid crypto time_in_force"),
        ({**MARKET_BUY, "type": "limit"}, 40010000, "limit_price is required for limit orders"),
        ({**MARKET_BUY, "limit_price": "100"}, 40010000, "market orders take no limit_price"),
        ({**MARKET_BUY, "qty": "-1"}, 40010000, "Quantity must be positive."),
        ({**MARKET_BUY, "qty": "0.000000001"}, 40010000, "BTC quantities have at most 8 decimals."),
        ({**MARKET_BUY, "colour": "red"}, 40010000, "unknown field(s): colour"),
        ({**MARKET_BUY, "client_order_id": "x" * 65}, 40010000, "client_order_id must be at most 64 characters"),
        ({**MARKET_BUY, "symbol": "BTC/EUR"}, 40010001, 'asset "BTC/EUR" not found'),
        ({**MARKET_BUY, "symbol": "00000000-0000-0000-0000-000000000000"}, 40010001, "asset "),
    ],
)
def test_bad_orders_are_422_in_alpacas_shape_and_store_nothing(alpaca_client, btc, set_price, body, code, message):
    # given
    set_price("BTC", "50000")

    # when
    response = alpaca_client.post("/v2/orders", body, format="json")

    # then
    assert response.status_code == 422
    assert set(response.json()) == {"code", "message"}
    assert response.json()["code"] == code
    assert response.json()["message"].startswith(message)
    assert not Order.objects.exists()


def test_malformed_json_is_400_in_alpacas_shape(alpaca_client, btc):
    response = alpaca_client.post("/v2/orders", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == 40010000


def test_no_key_is_401_and_an_unknown_path_is_404(api_client, db):
    unauthenticated = api_client.get("/v2/account")
    missing = api_client.get("/v2/no-such-endpoint")
    assert (unauthenticated.status_code, unauthenticated.json()) == (
        401,
        {"code": 40110000, "message": "request is not authorized"},
    )
    assert (missing.status_code, missing.json()["code"]) == (404, 40410000)


def test_half_a_key_is_401(api_client, credentials):
    response = api_client.get("/v2/account", HTTP_APCA_API_KEY_ID=credentials[0])
    assert (response.status_code, response.json()["code"]) == (401, 40110000)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v2/orders?status=sideways", 422, 40010000),
        ("/v2/orders?limit=0", 422, 40010000),
        ("/v2/orders?limit=501", 422, 40010000),
        ("/v2/orders?after=yesterday", 400, 40010000),
        ("/v2/orders/not-a-uuid", 404, 40410000),
        ("/v2/orders:by_client_order_id", 422, 40010000),
        ("/v2/orders:by_client_order_id?client_order_id=nope", 404, 40410000),
        ("/v2/positions/NOPE", 404, 40410000),
        ("/v2/assets/BTC%2FEUR", 404, 40410000),
        ("/v2/account/activities?page_token=garbage", 400, 40010000),
        ("/v2/account/activities?page_size=1000", 422, 40010000),
        ("/v1beta3/crypto/us/latest/quotes", 422, 40010000),
        ("/v1beta3/crypto/us/latest/quotes?symbols=BTC/EUR", 400, 40010001),
    ],
)
def test_bad_reads_are_4xx_in_alpacas_shape(alpaca_client, btc, path, status, code):
    # Alpaca answers invalid input 422 with a 400-family code (40010000), as here; a malformed
    # time, date or page token in a query is a 400.
    response = alpaca_client.get(path)
    assert response.status_code == status
    assert response.json() == {"code": code, "message": response.json()["message"]}


def test_closing_more_than_is_held_moves_nothing(alpaca_client, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    alpaca_client.post("/v2/orders", MARKET_BUY, format="json")

    # when
    response = alpaca_client.delete("/v2/positions/BTC/USD?qty=1")

    # then
    assert response.status_code == 403
    assert response.json() == {
        "code": 40310000,
        "message": "insufficient balance for BTC (requested: 1, available: 0.01)",
    }
    assert Order.objects.filter(status=Order.Status.COMPLETED).count() == 1
