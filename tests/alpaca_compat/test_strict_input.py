"""Alpaca's paths read input as strictly as /api/v1 and answer every refusal in Alpaca's
shape: times, dates and page tokens in queries (a 400), numbers in bodies (/api/v1's grammar),
and whatever Django refuses before a view (an unknown URL, a body too large, a NUL byte)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from rest_framework.test import APIClient

from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from tests.core.test_database_unavailable import Outage

MARKET_BUY = {"symbol": "BTC/USD", "qty": "0.01", "side": "buy", "type": "market", "time_in_force": "gtc"}
OUT_OF_RANGE = "out of range: times from 0100-01-01 to 9899-12-31 (UTC) are taken"
HINT = ' (did you mean "BTC/USD"?)'
ARABIC_INDIC_STAMP = "\u0662" * 20  # twenty Arabic-Indic digits, which \\d without re.ASCII takes


@pytest.fixture
def alpaca_client(credentials) -> APIClient:
    key_id, secret = credentials
    return APIClient(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def assert_alpaca_error(response, status: int, code: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    return body["message"]


def assert_nothing_moved(user) -> None:
    assert not Order.objects.exists()
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert CashTransaction.objects.filter(user=user).count() == 1  # the initial deposit


@pytest.mark.parametrize(
    ("path", "message"),
    [
        # each was a 500 (OverflowError), answered as Django's HTML page
        ("/v2/account/portfolio/history?date_end=9999-12-31", f"invalid date_end: {OUT_OF_RANGE}"),
        ("/v2/account/portfolio/history?date_end=0001-01-02", f"invalid date_end: {OUT_OF_RANGE}"),
        ("/v2/account/activities?date=9999-12-31", f"invalid date: {OUT_OF_RANGE}"),
        ("/v2/account/activities?until=9999-12-31T23:59:59Z", f"invalid until: {OUT_OF_RANGE}"),
        ("/v2/orders?after=0001-01-01T00:00:00%2B05:00", f"invalid after: {OUT_OF_RANGE}"),
        ("/v2/account/portfolio/history?end=9999-12-31T23:59:59Z", f"invalid end: {OUT_OF_RANGE}"),
        # malformed: other scripts' digits, a week date, a day that does not exist
        ("/v2/orders?until=\u0662\u0660\u0662\u0666-01-01", "invalid until: not a time"),
        ("/v2/account/activities?date=2026-W01-1", "invalid date: not a date"),
        ("/v2/account/portfolio/history?date_end=2026-02-30", "invalid date_end: not a date"),
        ("/v2/account/activities?page_token=20260101000000000000::A1%0A", "invalid page_token"),
        (f"/v2/account/activities?page_token={ARABIC_INDIC_STAMP}::A1", "invalid page_token"),
    ],
)
def test_a_bad_time_date_or_page_token_in_a_v2_query_is_a_400_in_alpacas_shape(alpaca_client, user, path, message):
    # when
    response = alpaca_client.get(path)

    # then
    assert assert_alpaca_error(response, 400, 40010000).startswith(message)
    assert_nothing_moved(user)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"page_token": _token("BTC|253402300799")}, "invalid page_token"),  # 9999-12-31: was a 500
        ({"page_token": _token("BTC|-62135596800")}, "invalid page_token"),  # 0001-01-01
        ({"page_token": _token("BTC|\u0661\u0662")}, "invalid page_token"),
        ({"page_token": _token("BTC|1e9")}, "invalid page_token"),
        ({"page_token": "not base64!"}, "invalid page_token"),
        ({"start": "9999-12-31T23:59:59Z"}, f"invalid start: {OUT_OF_RANGE}"),
        ({"end": "2026-03-02T12:00:00+24:00"}, "invalid end: not a time"),
    ],
)
def test_a_bad_time_or_page_token_for_bars_is_a_400_even_without_a_key(api_client, btc, query, message):
    # given no key: market data is open to anyone
    params = {"symbols": "BTC/USD", "timeframe": "1Day", **query}

    # when
    response = api_client.get("/v1beta3/crypto/us/bars", params)

    # then
    assert assert_alpaca_error(response, 400, 40010000).startswith(message)


@pytest.mark.parametrize(
    "qty",
    ["\u0661\u0662\u0663", "1_000", "\uff11\uff12\uff13", "1e3", " 1", "0x10", "+-1"],
)
def test_an_order_quantity_takes_only_plain_ascii_digits_as_on_api_v1(alpaca_client, user, btc, set_price, qty):
    # given: Arabic-Indic, underscored and full-width quantities were placed as 123 and 1000
    set_price("BTC", "1")

    # when
    response = alpaca_client.post("/v2/orders", {**MARKET_BUY, "qty": qty}, format="json")

    # then
    message = assert_alpaca_error(response, 422, 40010000)
    assert message.startswith("qty: Write a plain decimal number")
    assert_nothing_moved(user)


@pytest.mark.parametrize("field", ["limit_price", "stop_price"])
def test_order_prices_take_only_plain_ascii_digits_too(alpaca_client, user, btc, set_price, field):
    # given
    set_price("BTC", "50000")
    body = {**MARKET_BUY, "type": "stop_limit", "limit_price": "40000", "stop_price": "41000", field: "4\u0660000"}

    # when
    response = alpaca_client.post("/v2/orders", body, format="json")

    # then
    assert assert_alpaca_error(response, 422, 40010000).startswith(f"{field}: Write a plain decimal number")
    assert_nothing_moved(user)


@pytest.mark.parametrize(
    ("raw", "status"),
    [("1e3", 400), ("1E2", 400), ("0.5e1", 400), ("5e+2", 400), ("1e-999999", 400), ("5e-30", 422)],
)
def test_a_json_number_with_an_exponent_is_refused_unless_it_is_how_a_small_float_is_written(
    alpaca_client, user, btc, set_price, raw, status
):
    # given
    set_price("BTC", "50000")
    body = json.dumps(MARKET_BUY).replace('"0.01"', raw)

    # when
    response = alpaca_client.post("/v2/orders", data=body, content_type="application/json")

    # then malformed JSON (400), or read as a small float (5e-30) and refused by the column's decimals
    assert_alpaca_error(response, status, 40010000)
    assert_nothing_moved(user)


def test_the_sdk_sends_a_small_quantity_as_a_float_with_an_exponent_and_it_is_placed_exactly(
    trading, user, btc, set_price
):
    # given: json.dumps(0.00005) is "5e-05", which Alpaca takes
    set_price("BTC", "50000")

    # when
    order = trading.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.00005, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )

    # then
    assert order.filled_qty == "0.00005"
    assert Order.objects.get().quantity == Decimal("0.00005")


BARS_QUERY = {"symbols": "BTC/USD", "timeframe": "1Day"}


@pytest.mark.parametrize(
    ("path", "query", "field", "value"),
    [
        ("/v2/orders", {}, "limit", "\u0661\u0660"),
        ("/v2/orders", {}, "limit", "1_0"),
        ("/v2/account/activities", {}, "page_size", " 10"),
        ("/v1beta3/crypto/us/bars", BARS_QUERY, "limit", "\uff11"),
    ],
)
def test_a_number_in_a_query_takes_only_ascii_digits(alpaca_client, btc, path, query, field, value):
    # when
    response = alpaca_client.get(path, {**query, field: value})

    # then
    assert assert_alpaca_error(response, 422, 40010000).startswith(f"{field}: Write a whole number in ASCII digits")


def test_an_upper_case_side_is_refused_with_the_values_the_sdk_sends(alpaca_client, user, btc, set_price):
    # given: alpaca-py's OrderSide is "buy" / "sell"; the message read "... valid choice.; type: ..."
    set_price("BTC", "50000")

    # when
    response = alpaca_client.post("/v2/orders", {**MARKET_BUY, "side": "BUY", "type": "Market"}, format="json")

    # then
    assert assert_alpaca_error(response, 422, 40010000) == (
        'side must be buy or sell, not "BUY"; '
        'type must be market, limit, stop, stop_limit or trailing_stop, not "Market"'
    )
    assert_nothing_moved(user)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("post", "/v2/orders", {**MARKET_BUY, "symbol": "BTC"}, 422, 40010001, f'asset "BTC" not found{HINT}'),
        ("get", "/v2/assets/btc", None, 404, 40410000, f"asset not found for btc{HINT}"),
        ("get", "/v1beta3/crypto/us/latest/quotes?symbols=BTC", None, 400, 40010001, f"invalid symbol: BTC{HINT}"),
        ("get", "/v2/assets/DOGE", None, 404, 40410000, "asset not found for DOGE"),
    ],
)
def test_a_bare_asset_id_for_a_symbol_is_told_the_pair_to_write(
    alpaca_client, user, btc, set_price, method, path, body, status, code, message
):
    # given
    set_price("BTC", "50000")

    # when
    response = getattr(alpaca_client, method)(path, body, format="json") if body else alpaca_client.get(path)

    # then
    assert assert_alpaca_error(response, status, code) == message
    assert_nothing_moved(user)


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_a_v2_url_with_a_trailing_slash_names_the_url_to_use(alpaca_client, user, btc, method):
    # when
    response = getattr(alpaca_client, method)("/v2/account/")

    # then
    message = assert_alpaca_error(response, 404, 40410000)
    assert message == f"endpoint not found: Alpaca's URLs have no trailing slash: {method.upper()} /v2/account"
    assert_nothing_moved(user)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/v2/no-such-endpoint/", 404, 40410000),
        ("get", "/v1beta3/crypto/eu/bars", 404, 40410000),  # outside the included paths: Django's handler404
        ("get", "/v1beta3", 404, 40410000),
        ("put", "/v2/account", 405, 40510000),
        ("post", "/v1beta3/crypto/us/bars", 405, 40510000),
        ("get", "/v2/orders?status=%00", 400, 40010000),  # a NUL byte
        ("get", "/v1beta3/crypto/us/bars?symbols=BTC%2FUSD%00", 400, 40010000),
    ],
)
def test_no_answer_under_alpacas_paths_is_a_django_page(alpaca_client, btc, method, path, status, code, settings):
    # given DEBUG off, as in production
    settings.DEBUG = False

    # when
    response = getattr(alpaca_client, method)(path)

    # then
    assert_alpaca_error(response, status, code)


def test_a_body_above_the_upload_limit_is_alpacas_413_in_json(alpaca_client, user, btc, set_price):
    # given a 3 MB body (DATA_UPLOAD_MAX_MEMORY_SIZE is 2.5 MB); it was Django's HTML 400
    set_price("BTC", "50000")
    body = json.dumps({**MARKET_BUY, "client_order_id": "x" * 3_000_000})

    # when
    response = alpaca_client.post("/v2/orders", data=body, content_type="application/json")

    # then
    assert assert_alpaca_error(response, 413, 41310000) == "request body too large"
    assert_nothing_moved(user)


def test_a_host_django_refuses_is_a_400_in_alpacas_shape(alpaca_client, btc, settings):
    # given
    settings.DEBUG = False

    # when
    response = alpaca_client.get("/v2/account", HTTP_HOST="evil.example")

    # then
    assert assert_alpaca_error(response, 400, 40010000) == "malformed request"


@pytest.mark.django_db(transaction=True)
def test_a_v2_request_while_the_database_is_down_is_alpacas_503(credentials):
    # given
    key_id, secret = credentials
    client = APIClient(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)
    outage = Outage()
    outage.begin()
    try:
        # when
        response = client.get("/v2/account")
    finally:
        outage.end()

    # then
    message = assert_alpaca_error(response, 503, 50310000)
    assert message == "service unavailable (its database cannot be reached); try again shortly"
    assert response["Retry-After"] == "2"
