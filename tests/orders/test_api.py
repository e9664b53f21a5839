from decimal import Decimal

import pytest

from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from orders.validation import OrderRequest
from tests.support.api import error_code

ORDERS = "/api/v1/orders/"


def test_market_buy_fills_at_the_market_price_and_debits_the_cost(auth_client, user, btc_at_50k):
    # when
    response = auth_client.post(ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}, format="json")
    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert body["executed_price"] == "50000"
    assert body["total_amount"] == "500.00"
    assert body["created_at"] == body["filled_at"]
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")


def test_lowercase_asset_id_and_numeric_quantity_are_accepted(auth_client, btc_at_50k):
    response = auth_client.post(ORDERS, {"asset_id": "btc", "order_type": "BUY", "quantity": 0.001}, format="json")
    assert response.status_code == 201
    assert response.json()["quantity"] == "0.001"


def test_json_numbers_are_parsed_as_decimals_without_float_rounding(auth_client, btc_at_50k):
    # 0.123456789012345678 is not representable as a float; the order keeps all 18 digits.
    # given an asset that allows 18 decimals
    btc_at_50k.quantity_decimals = 18
    btc_at_50k.save()
    response = auth_client.post(
        ORDERS,
        data='{"asset_id": "BTC", "order_type": "BUY", "quantity": 0.000123456789012345}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["quantity"] == "0.000123456789012345"


def test_insufficient_funds_is_422_and_the_failed_order_is_listed(auth_client, user, btc_at_50k):
    response = auth_client.post(ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "1"}, format="json")
    assert response.status_code == 422
    assert error_code(response) == "insufficient_funds"
    order_id = response.json()["error"]["details"]["order_id"]
    assert Order.objects.get(pk=order_id).status == Order.Status.FAILED
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert CashTransaction.objects.filter(user=user).count() == 1  # only the initial deposit


def test_sell_without_holding_is_422_insufficient_asset(auth_client, btc_at_50k):
    response = auth_client.post(ORDERS, {"asset_id": "BTC", "order_type": "SELL", "quantity": "0.01"}, format="json")
    assert response.status_code == 422
    assert error_code(response) == "insufficient_asset"


def test_insufficient_errors_write_quantities_plainly_and_usd_with_cents(auth_client, user, btc_at_50k):
    # given 0.01 BTC held (read back from its column: 0.010000000000000000), then all of it
    # held by a resting SELL (0E-18 left)
    buy = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}
    auth_client.post(ORDERS, buy, format="json")
    sell_more = auth_client.post(ORDERS, {**buy, "order_type": "SELL", "quantity": "0.02"}, format="json")
    auth_client.post(ORDERS, {**buy, "order_type": "SELL", "order_price": "60000"}, format="json")
    # when
    sell_held = auth_client.post(ORDERS, {**buy, "order_type": "SELL"}, format="json")
    close_held = auth_client.post("/api/v1/asset-balances/BTC/close/", {}, format="json")
    buy_more = auth_client.post(ORDERS, {**buy, "quantity": "1"}, format="json")
    # then
    details = [answer.json()["error"]["details"] for answer in (sell_more, sell_held, close_held, buy_more)]
    assert [{k: v for k, v in d.items() if k != "order_id"} for d in details] == [
        {"available": "0.01", "required": "0.02"},
        {"available": "0", "required": "0.01"},
        {"available": "0", "required": "0"},
        {"available": "9500.00", "required": "50000.00"},
    ]
    assert [error_code(answer) for answer in (sell_more, sell_held, close_held, buy_more)] == [
        "insufficient_asset",
        "insufficient_asset",
        "insufficient_asset",
        "insufficient_funds",
    ]


def test_price_unavailable_is_503_with_retry_after_and_nothing_is_stored(auth_client, user, btc, settings):
    # given a provider that cannot be reached and no last good price
    settings.PRICE_PROVIDER = "coingecko"
    settings.COINGECKO_API_URL = "http://127.0.0.1:9"
    settings.COINGECKO_RETRIES = 0
    # when
    response = auth_client.post(ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}, format="json")
    # then: a transient refusal, not an order
    assert response.status_code == 503
    assert error_code(response) == "price_unavailable"
    assert response["Retry-After"] == "2"
    assert not Order.objects.exists()
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")


@pytest.mark.parametrize(
    "payload",
    [
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "NaN"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "Infinity"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "-Infinity"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "1e999999999"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "1e-999999999"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "-1"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.000000001"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0000001"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "1" * 40},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": True},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": ["1"]},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": {"a": 1}},
        {"asset_id": "BTC", "order_type": "HOLD", "quantity": "1"},
        {"asset_id": "NOPE", "order_type": "BUY", "quantity": "1"},
        {"asset_id": "B/TC", "order_type": "BUY", "quantity": "1"},
        {"asset_id": 12, "order_type": "BUY", "quantity": "1"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "NaN"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "-5"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "0"},
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "expires_at": "yesterday"},
        {
            "asset_id": "BTC",
            "order_type": "BUY",
            "quantity": "0.01",
            "order_price": "1",
            "expires_at": "2001-01-01T00:00:00Z",
        },
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "x" * 65},
        {"asset_id": "BTC", "order_type": "BUY"},
        {},
    ],
)
def test_bad_order_input_is_400_and_stores_nothing(auth_client, user, btc_at_50k, payload):
    response = auth_client.post(ORDERS, payload, format="json")
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert Order.objects.count() == 0
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")


@pytest.mark.parametrize(
    "raw",
    [
        '{"asset_id": "BTC", "order_type": "BUY", "quantity": NaN}',
        '{"asset_id": "BTC", "order_type": "BUY", "quantity": Infinity}',
        '{"asset_id": "BTC", "order_type": "BUY", "quantity": 1e999999}',
        '{"asset_id": "BTC", "order_type": "BUY", "quantity": ',
        "[1, 2, 3]",
        '"just a string"',
        "\xff\xfe",
        "[" * 100000,
    ],
)
def test_malformed_json_is_400_never_500(auth_client, btc_at_50k, raw):
    response = auth_client.post(ORDERS, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) in {"malformed_request", "validation_error"}
    assert Order.objects.count() == 0


def test_below_minimum_notional_is_400(auth_client, btc_at_50k):
    response = auth_client.post(ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.00001"}, format="json")
    assert response.status_code == 400
    assert "below" in response.json()["error"]["details"]["quantity"][0]


def test_limit_buy_below_market_rests_with_a_hold(auth_client, user, btc_at_50k):
    response = auth_client.post(
        ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "40000.005"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "PENDING"
    assert body["held_amount"] == "400.01"  # 400.00005 rounded up
    assert body["expires_at"] is not None
    balance = UsdBalance.objects.get(user=user)
    assert (balance.current_balance, balance.held) == (Decimal("10000.00"), Decimal("400.01"))


def test_cancel_releases_the_hold_and_a_second_cancel_is_409(auth_client, user, btc_at_50k):
    placed = auth_client.post(
        ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "40000"}, format="json"
    ).json()
    # when
    response = auth_client.post(f"{ORDERS}{placed['order_id']}/cancel/")
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert UsdBalance.objects.get(user=user).held == Decimal("0.00")
    again = auth_client.post(f"{ORDERS}{placed['order_id']}/cancel/")
    assert again.status_code == 409
    assert error_code(again) == "conflict"


def test_client_order_id_replay_returns_the_original_and_conflict_on_change(auth_client, user, btc_at_50k):
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "abc-1"}
    first = auth_client.post(ORDERS, payload, format="json")
    second = auth_client.post(ORDERS, payload, format="json")
    changed = auth_client.post(ORDERS, {**payload, "quantity": "0.02"}, format="json")
    assert (first.status_code, second.status_code, changed.status_code) == (201, 200, 409)
    assert first.json()["order_id"] == second.json()["order_id"]
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")


def test_another_users_order_is_404_for_show_and_cancel(auth_client, other_user, btc_at_50k):
    from orders.services import place_order

    order = place_order(
        user=other_user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("1000")),
    ).order
    assert auth_client.get(f"{ORDERS}{order.order_id}/").status_code == 404
    response = auth_client.post(f"{ORDERS}{order.order_id}/cancel/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "1" * 36])
def test_unknown_or_malformed_order_id_is_404(auth_client, bad_id):
    assert auth_client.get(f"{ORDERS}{bad_id}/").status_code == 404


def test_list_filters_and_is_scoped_to_the_user(auth_client, user, other_user, btc_at_50k, eth, set_price):
    from orders.services import place_order

    set_price("ETH", "2500")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    place_order(
        user=user,
        request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("0.1"), order_price=Decimal("100")),
    )
    place_order(user=other_user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    # then
    assert len(auth_client.get(ORDERS).json()["results"]) == 2
    assert [o["asset_id"] for o in auth_client.get(ORDERS, {"asset_id": "eth"}).json()["results"]] == ["ETH"]
    assert [o["status"] for o in auth_client.get(ORDERS, {"status": "PENDING"}).json()["results"]] == ["PENDING"]
    assert auth_client.get(ORDERS, {"status": "BOGUS"}).status_code == 400
    assert auth_client.get(ORDERS, {"username": "bob"}).status_code == 404


def test_back_office_staff_may_list_another_users_orders(api_client, support_staff, other_user, btc_at_50k):
    from accounts.services import issue_token
    from orders.services import place_order

    place_order(user=other_user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=support_staff).key}")
    response = api_client.get(ORDERS, {"username": "bob"})
    assert [o["username"] for o in response.json()["results"]] == ["bob"]
    assert api_client.get(ORDERS, {"username": "nobody"}).status_code == 404


def test_orders_need_authentication(api_client):
    response = api_client.get(ORDERS)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_order_list_costs_the_same_queries_for_1_and_50_orders(
    auth_client, user, btc_at_50k, django_assert_num_queries
):
    # given
    from orders.services import place_order

    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.0001")))

    # when / then: the token with its user, the page of orders with theirs
    with django_assert_num_queries(2):
        assert len(auth_client.get(ORDERS, {"page_size": 100}).json()["results"]) == 1
    for _ in range(49):
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.0001")))
    with django_assert_num_queries(2):
        assert len(auth_client.get(ORDERS, {"page_size": 100}).json()["results"]) == 50


def test_cursor_pagination_walks_every_order_once(auth_client, user, btc_at_50k):
    from orders.services import place_order

    for _ in range(7):
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.0001")))
    seen, url = [], f"{ORDERS}?page_size=3"
    while url:
        body = auth_client.get(url).json()
        seen += [o["order_id"] for o in body["results"]]
        url = body["next"]
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.usefixtures("throttle_clock_frozen")
def test_order_placement_is_throttled_per_user_but_reads_are_not(auth_client, btc_at_50k, monkeypatch):
    # given a rate of 2 orders a minute
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "orders": "2/min"})
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}
    # when
    codes = [auth_client.post(ORDERS, payload, format="json").status_code for _ in range(3)]
    reads = [auth_client.get(ORDERS).status_code for _ in range(3)]
    # then
    assert codes == [201, 201, 429]
    assert reads == [200, 200, 200]
    limited = auth_client.post(ORDERS, payload, format="json")
    assert error_code(limited) == "throttled"
    assert int(limited["Retry-After"]) == 30  # the frozen clock is mid-minute
    assert Order.objects.count() == 2
