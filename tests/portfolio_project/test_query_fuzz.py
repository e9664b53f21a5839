"""Every query parameter of every GET in the OpenAPI document (``/api/v1/schema/``), fuzzed
with hostile times, cursors, page tokens and numbers (tests/support/query_fuzz.py): no answer is a 5xx,
every refusal is in the error shape. Deterministic (derandomized hypothesis, no example
database) and bounded: FUZZ_SETTINGS' examples per operation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from drf_spectacular.generators import SchemaGenerator
from hypothesis import given
from hypothesis import strategies as st

from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code
from tests.support.price_records import record_btc_minutes
from tests.support.query_fuzz import FUZZ_SETTINGS, hostile_values, values_for


def _query_parameters() -> list[tuple[str, dict]]:
    """(path, parameter) of each query parameter of each GET in the document."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, parameter)
        for path, methods in document["paths"].items()
        for parameter in methods.get("get", {}).get("parameters", [])
        if parameter["in"] == "query"
    ]


PARAMETERS = _query_parameters()
# What a request needs besides the fuzzed parameters for them to be read at all.
REQUIRED = {
    "/api/v1/market/bars/": {"asset_id": "BTC", "timeframe": "1D"},
    "/api/v1/market/latest/": {"asset_id": "BTC"},
}


@pytest.fixture
def account(user, btc, eth, set_price):
    """Ledger rows, orders and recorded prices, so lists, history and bars have rows to page."""
    record_btc_minutes(btc)
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.05")))
    place_order(
        user=user,
        request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1"), order_price=Decimal("1000")),
    )
    return user


def test_the_document_names_the_query_parameters_fuzzed_below():
    assert {path for path, _ in PARAMETERS} >= {
        "/api/v1/activities/",
        "/api/v1/assets/",
        "/api/v1/cash-transactions/",
        "/api/v1/market/bars/",
        "/api/v1/orders/",
        "/api/v1/portfolio/history/",
        "/api/v1/transactions/",
    }


@pytest.mark.parametrize(("path", "parameter"), PARAMETERS, ids=[f"{path}?{p['name']}" for path, p in PARAMETERS])
@FUZZ_SETTINGS
@given(data=st.data())
def test_no_hostile_query_value_is_a_server_error(auth_client, account, path, parameter, data):
    # given the parameter with a hostile value of its kind, sometimes with another one beside it
    name, schema = parameter["name"], parameter.get("schema", {})
    query = {
        **REQUIRED.get(path, {}),
        name: data.draw(values_for(name, kind=schema.get("type"), fmt=schema.get("format"))),
    }
    others = [other["name"] for p, other in PARAMETERS if p == path and other["name"] != name]
    if others and data.draw(st.booleans(), label="another"):
        query[data.draw(st.sampled_from(others))] = data.draw(hostile_values(), label="its value")

    # when
    response = auth_client.get(path, query)

    # then
    assert response.status_code < 500, (query, response.content[:300])
    if response.status_code >= 400:
        error_code(response)
