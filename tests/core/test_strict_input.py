"""Strict input (docs/DESIGN.md, "Input"): plain ASCII numbers, no unknown fields, malformed and
oversized requests answered in the error shape, cursors that cannot be forged into a 500."""

import base64
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from tests.support.api import error_code

ORDERS = "/api/v1/orders/"
DEPOSIT = "/api/v1/balance/deposit/"


def assert_nothing_moved(user):
    assert Order.objects.count() == 0
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert CashTransaction.objects.filter(user=user).count() == 1  # the initial deposit


@pytest.mark.parametrize(
    "amount",
    [
        "1_000",  # Decimal() takes it
        "\u0661\u0660",  # Arabic-Indic 10
        "\uff11\uff10",  # full-width 10
        "1e3",
        "1E3",
        " 10",
        "10 ",
        "+-1",
        "1.2.3",
        "0x10",
    ],
)
def test_deposit_amount_must_be_a_plain_ascii_number(auth_client, user, amount):
    # when
    response = auth_client.post(DEPOSIT, {"amount": amount}, format="json")
    # then
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert "plain decimal" in response.json()["error"]["details"]["amount"][0]
    assert_nothing_moved(user)


@pytest.mark.parametrize("field", ["quantity", "order_price"])
@pytest.mark.parametrize("number", ["1_0", "\u0661", "\uff11", "1e1"])
def test_order_numbers_must_be_plain_ascii(auth_client, user, btc_at_50k, field, number):
    # given
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", field: number}
    # when
    response = auth_client.post(ORDERS, payload, format="json")
    # then
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]
    assert_nothing_moved(user)


@pytest.mark.parametrize("raw", ["1e2", "1E2", "1.5e1", "100e-2"])
def test_json_numbers_with_an_exponent_are_refused(auth_client, user, raw):
    # when
    response = auth_client.post(DEPOSIT, data=f'{{"amount": {raw}}}', content_type="application/json")
    # then
    assert response.status_code == 400
    assert error_code(response) == "malformed_request"
    assert "exponent" in response.json()["error"]["message"]
    assert_nothing_moved(user)


def test_plain_json_numbers_and_signed_strings_are_taken(auth_client, user):
    # when
    as_number = auth_client.post(DEPOSIT, data='{"amount": 10.50}', content_type="application/json")
    as_string = auth_client.post(DEPOSIT, {"amount": "+4.5"}, format="json")
    # then
    assert (as_number.status_code, as_string.status_code) == (201, 201)
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10015.00")


@pytest.mark.parametrize(
    "extra",
    [{"limit_price": "0.01"}, {"price": "1"}, {"limit_price": "1", "stop": "2"}],
)
def test_an_unknown_order_field_is_400_unknown_field_and_places_nothing(auth_client, user, btc_at_50k, extra):
    # given a market order with a misspelt limit: it used to fill at the market
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", **extra}
    # when
    response = auth_client.post(ORDERS, payload, format="json")
    # then
    assert response.status_code == 400
    assert error_code(response) == "unknown_field"
    assert response.json()["error"]["details"] == {name: ["Unknown field."] for name in sorted(extra)}
    assert ", ".join(sorted(extra)) in response.json()["error"]["message"]
    assert_nothing_moved(user)


def test_an_unknown_deposit_field_is_400_unknown_field(auth_client, user):
    response = auth_client.post(DEPOSIT, {"amount": "5", "reference": "dep-1"}, format="json")
    assert response.status_code == 400
    assert error_code(response) == "unknown_field"
    assert response.json()["error"]["details"] == {"reference": ["Unknown field."]}
    assert_nothing_moved(user)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/register/", {"username": "newbie", "password": "a-long-passphrase", "is_staff": True}),
        ("/api/v1/auth/token/", {"username": "alice", "password": "correct-horse-battery", "remember": True}),
        ("/api/v1/api-keys/", {"name": "bot", "scopes": ["trade"]}),
    ],
)
def test_account_bodies_refuse_unknown_fields_too(api_client, auth_client, user, path, body):
    # given: the API-key body is sent logged in, the others anonymously
    client = auth_client if "api-keys" in path else api_client
    # when
    response = client.post(path, body, format="json")
    # then nothing is created, and the stray field is named
    assert response.status_code == 400, response.content
    assert error_code(response) == "unknown_field"
    stray = sorted(set(body) - {"username", "password", "name"})
    assert response.json()["error"]["details"] == {name: ["Unknown field."] for name in stray}
    assert not get_user_model().objects.filter(username="newbie").exists()


def test_a_browsable_api_form_post_is_not_an_unknown_field(api_client, user):
    # given a session login, as the browsable API's HTML form uses (its CSRF token field is plumbing)
    api_client.force_login(user)
    # when
    response = api_client.post(DEPOSIT, {"amount": "5", "csrfmiddlewaretoken": "x"})
    # then
    assert response.status_code == 201, response.content
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10005.00")


def test_a_body_above_the_upload_limit_is_413_in_the_error_shape(auth_client, user, btc_at_50k, settings):
    # given
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "x" * 2000})
    # when
    response = auth_client.post(ORDERS, data=body, content_type="application/json")
    # then
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"
    assert_nothing_moved(user)


def test_a_form_with_too_many_fields_is_400_in_the_error_shape(auth_client, user):
    # given more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
    form = "&".join(f"f{i}=1" for i in range(1001))
    # when
    response = auth_client.post(DEPOSIT, data=form, content_type="application/x-www-form-urlencoded")
    # then
    assert response.status_code == 400
    assert error_code(response) == "malformed_request"
    assert_nothing_moved(user)


def test_a_request_refused_before_any_view_is_json_under_api(api_client, db, settings):
    # given a host Django refuses (SuspiciousOperation, Django's handler400)
    settings.DEBUG = False
    # when
    response = api_client.get("/api/v1/assets/", HTTP_HOST="evil.example")
    # then
    assert response.status_code == 400
    assert error_code(response) == "malformed_request"


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()  # as DRF writes one (of ASCII)


@pytest.mark.parametrize("path", [ORDERS, "/api/v1/transactions/", "/api/v1/cash-transactions/"])
@pytest.mark.parametrize(
    "query",
    [
        "p=BTC",  # borrowed from the assets list
        "o=1&p=not-a-date",
        "p=2026-13-45T00:00:00Z",
        "p=2026-01-01T00:00:00",  # naive
        "r=1&p=9999-12-31T23:59:59-14:00",  # out of range in UTC
        "r=1&p=9999-12-31 23:59:59+00:00",  # out of the range times in queries take
        "o=\u0661&p=2026-01-01 00:00:00+00:00",  # an Arabic-Indic offset, which int() takes
        "o=1&o=2&p=2026-01-01 00:00:00+00:00",  # a field twice
        "x=1&p=2026-01-01 00:00:00+00:00",  # a field no cursor has
        "r=2&p=2026-01-01 00:00:00+00:00",
        "r=1&p=\x00",  # a NUL byte (PostgreSQL's DataError)
    ],
)
def test_a_forged_or_borrowed_cursor_is_400_naming_the_cursor(auth_client, user, path, query):
    # when
    response = auth_client.get(path, {"cursor": _cursor(query)})
    # then
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == ["cursor"]


def test_a_cursor_of_the_same_list_still_pages(auth_client, user):
    # given three ledger rows
    for amount in ("1", "2"):
        auth_client.post(DEPOSIT, {"amount": amount}, format="json")
    first = auth_client.get("/api/v1/cash-transactions/", {"page_size": 2}).json()
    # when
    second = auth_client.get(first["next"]).json()
    # then
    assert [row["amount"] for row in first["results"] + second["results"]] == ["2.00", "1.00", "10000.00"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_without_the_trailing_slash_names_the_url_to_use(auth_client, btc_at_50k, method, settings):
    # given DEBUG off, as in production
    settings.DEBUG = False
    # when
    response = getattr(auth_client, method)("/api/v1/orders", {"asset_id": "BTC"}, format="json")
    # then
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert response.json()["error"]["details"] == {"hint": "/api/v1/orders/"}
    assert Order.objects.count() == 0


def test_a_read_without_the_trailing_slash_is_still_redirected(auth_client, db):
    response = auth_client.get("/api/v1/orders")
    assert (response.status_code, response["Location"]) == (301, "/api/v1/orders/")


def test_a_method_not_allowed_names_the_allowed_ones(auth_client, db):
    response = auth_client.delete("/api/v1/balance/deposit/")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert response.json()["error"]["details"] == {"allowed": ["POST"]}


def test_enums_are_taken_in_any_case_and_answered_in_upper_case(auth_client, user, btc_at_50k):
    # when
    placed = auth_client.post(
        ORDERS, {"asset_id": "btc", "order_type": "buy", "quantity": "0.01", "order_price": "40000"}, format="json"
    )
    # then
    assert placed.status_code == 201, placed.content
    assert (placed.json()["asset_id"], placed.json()["order_type"]) == ("BTC", "BUY")
    assert [o["status"] for o in auth_client.get(ORDERS, {"status": "pending"}).json()["results"]] == ["PENDING"]
    assert len(auth_client.get(ORDERS, {"order_type": "Buy"}).json()["results"]) == 1
    assert auth_client.get(ORDERS, {"order_type": "sell"}).json()["results"] == []
    ledger = auth_client.get("/api/v1/cash-transactions/", {"transaction_type": "deposit"}).json()["results"]
    assert [row["transaction_type"] for row in ledger] == ["DEPOSIT"]
    assert auth_client.get("/api/v1/transactions/", {"transaction_type": "buy"}).status_code == 200
    assert auth_client.get(ORDERS, {"status": "pendingx"}).status_code == 400


def test_lower_case_enums_are_taken_in_any_case_and_answered_as_declared(auth_client, user, btc_at_50k):
    # when
    placed = auth_client.post(
        ORDERS,
        {"asset_id": "BTC", "order_type": "Buy", "quantity": "0.01", "order_price": "40000", "time_in_force": "GTC"},
        format="json",
    )
    # then
    assert placed.status_code == 201, placed.content
    assert (placed.json()["time_in_force"], placed.json()["kind"]) == ("gtc", "limit")
    assert len(auth_client.get(ORDERS, {"kind": "LIMIT", "status": "Open"}).json()["results"]) == 1


@pytest.mark.parametrize(
    ("after", "status"),
    [("0385-04-19T02:04:56.2+21:33", 200), ("2026-01-01T00:00:00", 200), ("0001-01-01T00:00:00+05:00", 400)],
)
def test_time_filters_take_any_offset_python_reads(auth_client, user, after, status):
    # PostgreSQL refuses offsets beyond +-15:59: the filter compares in UTC (this was a 500)
    response = auth_client.get(ORDERS, {"after": after})
    assert response.status_code == status, response.content
