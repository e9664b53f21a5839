"""Property-based contract test: schemathesis drives every operation of the OpenAPI schema
(``/api/v1/schema/``) through the real WSGI application and checks that no answer is a 5xx
and that every answer (status code, content type, body, headers) is one the schema documents.

The requests go through Django's real request handling (``portfolio_project.wsgi.application``)
in this process and thread, so they share the test's database connection and transaction:
a plain ``django_db`` test, rolled back at the end, with no live server. As Django's own test
client does, the per-request ``close_old_connections`` handlers are unhooked meanwhile, or the
first request would close the connection in the middle of the test transaction.

Bounded and deterministic for CI: a fixed seed, derandomized generation, no example database,
``MAX_EXAMPLES`` fuzzed examples per operation.
"""

from decimal import Decimal

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.throttling import SimpleRateThrottle
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import issue_token
from orders.services import place_order
from orders.validation import OrderRequest
from portfolio_project.wsgi import application

MAX_EXAMPLES = 25
SCHEMA_PATH = "/api/v1/schema/"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20240601,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
    }
)


@pytest.fixture
def _in_test_transaction():
    """Keep the test's connection (and its transaction) across requests, like django.test.Client."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def _auth_throttle_lifted(monkeypatch):
    """The login and registration throttles would answer most register/token examples with 429
    (documented, and covered by tests/api/test_auth_throttles.py): lift them so their real logic
    is exercised."""
    lifted = {"auth": None, "login_username": None, "register": None}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **lifted})


@pytest.fixture
def account(user, btc, eth, set_price):
    """A fresh user with cash, two holdings, filled and resting orders: the GETs return data.
    Returns the user's token and the real identifiers to point generated requests at."""
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.05")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="SELL", quantity=Decimal("0.25")))
    resting = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("40000")),
    ).order
    token = issue_token(user=user).key
    return token, {"asset_id": "BTC", "order_id": str(resting.order_id)}


def point_at_real_data(case, ids: dict[str, str]) -> bool:
    """Replace the generated identifiers (path parameters, an order's asset_id) with real ones,
    keeping the rest of the generated request. True if anything was replaced."""
    replaced = False
    for name, value in ids.items():
        if name in case.path_parameters:
            case.path_parameters[name] = value
            replaced = True
    if isinstance(case.body, dict) and isinstance(case.body.get("asset_id"), str):
        case.body["asset_id"] = ids["asset_id"]
        replaced = True
    return replaced


# Loaded at collection: the schema view needs no database. (schemathesis.pytest.from_fixture,
# the lazy alternative, does not work with pytest 9.)
schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=CONFIG)


@schema.parametrize()
# The user, their orders and the rolled-back transaction are shared by all the examples of one
# operation on purpose: each example sees the state the earlier ones left, as a client would.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.django_db
@pytest.mark.usefixtures("_in_test_transaction", "_auth_throttle_lifted")
def test_api_conforms_to_schema(case, account):
    token, ids = account
    headers = {"Authorization": f"Token {token}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
    # Generated identifiers almost never exist (404, or 400 for an unknown asset): send the same
    # request again about the user's real asset and order, so details, cancels and fills are
    # exercised with generated data too.
    if point_at_real_data(case, ids):
        case.call_and_validate(headers=headers, checks=CHECKS)
