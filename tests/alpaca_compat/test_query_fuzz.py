"""Every query parameter of Alpaca's routes (/v2 and /v1beta3 are not in the OpenAPI document:
their parameters are read from the serializers the views parse them with), fuzzed with hostile
times, page tokens and numbers (tests/support/query_fuzz.py): no answer is a 5xx, every answer is JSON,
every refusal Alpaca's ``{"code", "message"}``. Deterministic and bounded as FUZZ_SETTINGS says."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from alpaca_compat import market_data, trading
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.price_records import record_btc_minutes
from tests.support.query_fuzz import FUZZ_SETTINGS, hostile_values, values_for

SYMBOLS = {"symbols": "BTC/USD,ETH/USD"}
# (method, path, the serializer its query is read with, what a request needs besides).
ROUTES = [
    ("get", "/v2/orders", trading.ListOrders, {}),
    ("get", "/v2/orders:by_client_order_id", trading.ByClientOrderId, {"client_order_id": "fuzz"}),
    ("get", "/v2/account/activities", trading.ListActivities, {}),
    ("get", "/v2/account/activities/FILL", trading.ListActivities, {}),
    ("get", "/v2/account/portfolio/history", trading.PortfolioHistoryQuery, {}),
    ("get", "/v2/assets", trading.ListAssets, {}),
    ("delete", "/v2/positions/BTC/USD", trading.ClosePosition, {}),
    ("get", "/v1beta3/crypto/us/bars", market_data.BarsQuery, {**SYMBOLS, "timeframe": "1Min"}),
    ("get", "/v1beta3/crypto/us/latest/bars", market_data.SymbolsQuery, SYMBOLS),
    ("get", "/v1beta3/crypto/us/latest/quotes", market_data.SymbolsQuery, SYMBOLS),
    ("get", "/v1beta3/crypto/us/snapshots", market_data.SymbolsQuery, SYMBOLS),
]
PARAMETERS = [
    (method, path, name, required) for method, path, serializer, required in ROUTES for name in serializer().fields
]


@pytest.fixture
def alpaca_client(credentials, user, btc, eth, set_price) -> APIClient:
    """A key of a user with a filled and a resting order, and BTC's prices recorded."""
    record_btc_minutes(btc)
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.05")))
    place_order(
        user=user,
        request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1"), order_price=Decimal("1000")),
    )
    key_id, secret = credentials
    return APIClient(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)


@pytest.mark.parametrize(
    ("method", "path", "name", "required"), PARAMETERS, ids=[f"{m} {p}?{n}" for m, p, n, _ in PARAMETERS]
)
@FUZZ_SETTINGS
@given(data=st.data())
def test_no_hostile_query_value_is_a_server_error_or_a_page(alpaca_client, method, path, name, required, data):
    # given the parameter with a hostile value of its kind, sometimes with another one beside it
    query = {**required, name: data.draw(values_for(name, epoch_tokens=True), label=name)}
    others = [other for m, p, other, _ in PARAMETERS if (m, p) == (method, path) and other != name]
    if others and data.draw(st.booleans(), label="another"):
        query[data.draw(st.sampled_from(others))] = data.draw(hostile_values(), label="its value")

    # when (a DELETE's parameters go in its query string too, as alpaca-py sends them)
    response = getattr(alpaca_client, method)(f"{path}?{urlencode(query)}")

    # then
    assert response.status_code < 500, (query, response.content[:300])
    assert response["Content-Type"] == "application/json", (query, response.content[:300])
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message"}, response.json()
