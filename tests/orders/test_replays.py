"""Replays (SPEC section 10): a repeated client_order_id answers what the first request was
answered, status and body; expires_at is part of the comparison; a race of one key between
a failing market BUY and a resting order ends as a replay or a 409, never a 500."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

import orders.services
from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from orders.services import OrderFailed, place_order
from tests.api_helpers import error_code

ORDERS = "/api/v1/orders/"


def test_an_order_failed_for_want_of_funds_replays_as_the_same_422(auth_client, user, btc_at_50k):
    # given
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "1", "client_order_id": "big-1"}
    first = auth_client.post(ORDERS, payload, format="json")
    # when: retried after a deposit that would now cover it
    auth_client.post("/api/v1/balance/deposit/", {"amount": "50000"}, format="json")
    again = auth_client.post(ORDERS, payload, format="json")
    # then
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.json() == first.json()
    assert error_code(again) == "insufficient_funds"
    assert Order.objects.get().status == Order.Status.FAILED
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("60000.00")


def test_an_order_failed_on_a_price_outage_replays_as_the_same_503(auth_client, user, btc, settings, set_price):
    # given a provider that cannot be reached and no cached price
    settings.PRICE_PROVIDER = "coingecko"
    settings.COINGECKO_API_URL = "http://127.0.0.1:9"
    settings.COINGECKO_RETRIES = 0
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "outage-1"}
    first = auth_client.post(ORDERS, payload, format="json")
    # when: retried once prices are back
    set_price("BTC", "50000")
    again = auth_client.post(ORDERS, payload, format="json")
    # then
    assert (first.status_code, again.status_code) == (503, 503)
    assert again.json() == first.json()
    assert error_code(again) == "price_unavailable"
    assert Order.objects.count() == 1
    assert CashTransaction.objects.filter(user=user).count() == 1


def test_a_limit_order_replays_only_with_the_same_expires_at(auth_client, user, btc_at_50k):
    # given
    expires = (timezone.now() + timedelta(days=2)).isoformat()
    payload = {
        "asset_id": "BTC",
        "order_type": "BUY",
        "quantity": "0.01",
        "order_price": "40000",
        "expires_at": expires,
        "client_order_id": "lim-1",
    }
    first = auth_client.post(ORDERS, payload, format="json")
    # when
    same = auth_client.post(ORDERS, payload, format="json")
    later = auth_client.post(ORDERS, {**payload, "expires_at": (timezone.now() + timedelta(days=3)).isoformat()})
    default = auth_client.post(ORDERS, {k: v for k, v in payload.items() if k != "expires_at"}, format="json")
    # then
    assert (first.status_code, same.status_code, later.status_code, default.status_code) == (201, 200, 409, 409)
    assert same.json() == first.json()
    assert error_code(later) == "conflict"
    assert UsdBalance.objects.get(user=user).held == Decimal("400.00")


def test_a_limit_order_sent_without_expires_at_replays_without_it(auth_client, btc_at_50k):
    payload = {
        "asset_id": "BTC",
        "order_type": "BUY",
        "quantity": "0.01",
        "order_price": "40000",
        "client_order_id": "x",
    }
    first = auth_client.post(ORDERS, payload, format="json")
    again = auth_client.post(ORDERS, payload, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order_id"] == first.json()["order_id"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_market_buy_taking_the_key_mid_placement_makes_a_limit_order_a_409(user, btc, set_price, monkeypatch):
    # given: a limit BUY under the user lock has checked its client_order_id and is about to
    # insert, when a market BUY with the same key fails for want of funds in another thread
    # and stores its FAILED order (without the user lock).
    set_price("BTC", "50000")
    rest_locked = orders.services._rest_locked
    outcome = {}

    def failing_market_buy():
        try:
            place_order(user=user, asset_id="BTC", order_type="BUY", quantity=Decimal("1"), client_order_id="k")
        except OrderFailed as error:
            outcome["market"] = error.code
        finally:
            connection.close()

    def run_before_insert(**kwargs):
        thread = threading.Thread(target=failing_market_buy)
        thread.start()
        thread.join(timeout=10)
        return rest_locked(**kwargs)

    monkeypatch.setattr(orders.services, "_rest_locked", run_before_insert)
    # when
    with pytest.raises(orders.services.Conflict) as conflict:
        place_order(
            user=user,
            asset_id="BTC",
            order_type="BUY",
            quantity=Decimal("0.01"),
            order_price=Decimal("40000"),
            client_order_id="k",
        )
    # then: the market BUY failed as it should, the limit order is a 409 naming it, and
    # only the FAILED order exists, holding nothing
    failed = Order.objects.get()
    assert outcome == {"market": "insufficient_funds"}
    assert conflict.value.details == {"client_order_id": "k", "order_id": str(failed.order_id)}
    assert (failed.status, failed.order_price) == (Order.Status.FAILED, None)
    balance = UsdBalance.objects.get(user=user)
    assert (balance.current_balance, balance.held) == (Decimal("10000.00"), Decimal("0.00"))
