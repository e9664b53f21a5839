"""A NUL byte anywhere a request can carry one is a 400, never a 500 (PostgreSQL text
cannot hold NUL, so any lookup with one raised DataError)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from balances.models import CashTransaction

API_PATHS = [
    "/api/v1/assets/BTC%00/",
    "/api/v1/asset-balances/BTC%00/",
    "/api/v1/orders/%00/",
    "/api/v1/orders/?asset_id=BTC%00",
    "/api/v1/orders/?status=%00",
    "/api/v1/transactions/?asset_id=%00",
    "/api/v1/portfolio/?username=alice%00",
    "/api/v1/orders/?cursor=%00",
]

ADMIN_PATHS = [
    "/admin/assets/asset/BTC%00/change/",
    "/admin/orders/order/?status__exact=%00",
    "/admin/auth/user/?q=%00",
    "/admin/balances/usdbalance/%00/adjust/usd/",
]


@pytest.mark.parametrize("path", API_PATHS)
def test_an_api_path_or_query_with_a_nul_byte_is_a_400_in_the_error_shape(auth_client, btc, path):
    # when
    response = auth_client.get(path)

    # then
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_an_admin_path_or_query_with_a_nul_byte_is_a_400(admin_client, btc, path):
    # when / then
    assert admin_client.get(path).status_code == 400


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_AUTHORIZATION": "Token abc\x00def"},
        {"HTTP_COOKIE": "sessionid=abc\x00def"},
        {"HTTP_X_ANYTHING": "\x00"},
    ],
)
def test_a_header_with_a_nul_byte_is_a_400(user, header):
    # when
    response = APIClient().get("/api/v1/balance/", **header)

    # then
    assert response.status_code == 400


def test_a_nul_byte_in_a_post_query_string_moves_no_money(auth_client, user):
    # when
    response = auth_client.post("/api/v1/balance/deposit/?x=%00", {"amount": "5.00"}, format="json")

    # then
    assert response.status_code == 400
    assert CashTransaction.objects.filter(user=user).count() == 1  # the initial deposit only


def test_an_encoded_percent_sign_followed_by_zeros_is_not_a_nul(auth_client, btc):
    # "%2500" decodes to "%00" as text, not a NUL byte
    assert auth_client.get("/api/v1/orders/?client_order_id=%2500").status_code == 200
