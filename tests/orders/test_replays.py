"""Replays (docs/DESIGN.md, "How an order flows"): a repeated client_order_id answers what the first request was
answered, status and body; expires_at is part of the comparison; a race of one key between
a failing market BUY and a resting order ends as a replay or a 409, never a 500."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

import orders.services
from accounts.services import issue_token
from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from orders.services import OrderFailed, place_order, process_resting_orders
from orders.validation import OrderRequest
from tests.support.api import error_code
from tests.support.threads import run_concurrently

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


def test_a_price_outage_is_a_503_with_retry_after_and_the_same_request_is_placed_once_prices_are_back(
    auth_client, user, btc, coingecko_server
):
    # given a provider answering 500 to every try of the first request
    coingecko_server.fail_next(500, times=3)
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "outage-1"}
    first = auth_client.post(ORDERS, payload, format="json")
    # when: the same request once the provider is back, and once more
    coingecko_server.set_price("bitcoin", "50000")
    placed = auth_client.post(ORDERS, payload, format="json")
    again = auth_client.post(ORDERS, payload, format="json")
    # then: the 503 stored nothing and burnt no key; the retry placed the order, once
    assert (first.status_code, placed.status_code, again.status_code) == (503, 201, 200)
    assert error_code(first) == "price_unavailable"
    assert first["Retry-After"] == "2"
    assert (placed.json()["status"], placed.json()["client_order_id"]) == ("COMPLETED", "outage-1")
    assert again.json() == placed.json()
    assert Order.objects.count() == 1
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")
    assert CashTransaction.objects.filter(user=user).count() == 2


def test_an_open_price_breaker_answers_when_it_will_probe_and_the_retry_then_is_placed(
    auth_client, user, btc, coingecko_server, settings
):
    # given: one failed call opens the breaker for one second
    settings.PRICE_BREAKER_FAILURES = 1
    settings.PRICE_BREAKER_RESET_SECONDS = 1
    coingecko_server.fail_next(500, times=3)
    payload = {
        "asset_id": "BTC",
        "order_type": "BUY",
        "quantity": "0.01",
        "order_price": "40000",
        "client_order_id": "probe-1",
    }
    opened = auth_client.post(ORDERS, payload, format="json")
    coingecko_server.set_price("bitcoin", "50000")
    refused = auth_client.post(ORDERS, payload, format="json")  # the breaker answers: no call
    calls_while_open = coingecko_server.request_count
    # when: retried after the Retry-After it was given
    time.sleep(int(refused["Retry-After"]))
    placed = auth_client.post(ORDERS, payload, format="json")
    # then
    assert (opened.status_code, refused.status_code, placed.status_code) == (503, 503, 201)
    assert (opened["Retry-After"], refused["Retry-After"]) == ("1", "1")
    assert calls_while_open == 3
    assert (placed.json()["status"], placed.json()["held_amount"]) == ("PENDING", "400.00")
    assert Order.objects.get().client_order_id == "probe-1"
    assert UsdBalance.objects.get(user=user).held == Decimal("400.00")


def test_an_order_stored_failed_on_a_price_outage_before_gives_its_key_to_the_retry(auth_client, user, btc_at_50k):
    # given the row a 503 used to store: FAILED, holding the key, with the answer it replayed
    old = Order.objects.create(
        user=user,
        asset=btc_at_50k,
        order_type=Order.Type.BUY,
        quantity=Decimal("0.01"),
        status=Order.Status.FAILED,
        failure_reason="No price is available for BTC.",
        failure_code="price_unavailable",
        failure_details={"asset_id": "BTC", "order_id": "x"},
        client_order_id="old-1",
    )
    payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "old-1"}
    # when
    placed = auth_client.post(ORDERS, payload, format="json")
    again = auth_client.post(ORDERS, payload, format="json")
    # then: the retry is placed once; the old row stays, its key moved into its details
    assert (placed.status_code, again.status_code) == (201, 200)
    assert again.json() == placed.json()
    new = Order.objects.get(client_order_id="old-1")
    assert (str(new.order_id), new.status) == (placed.json()["order_id"], Order.Status.COMPLETED)
    old.refresh_from_db()
    assert (old.status, old.client_order_id) == (Order.Status.FAILED, None)
    assert old.failure_details == {"asset_id": "BTC", "order_id": "x", "client_order_id": "old-1"}
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")


@pytest.mark.parametrize(
    ("order_type", "prices", "kind"),
    [
        # the market (50000) is already at or past each stop: every one triggers on arrival
        ("BUY", {"stop_price": "49000"}, "stop"),
        ("BUY", {"stop_price": "49000", "order_price": "51000"}, "stop_limit"),
        ("SELL", {"stop_price": "51000"}, "stop"),
        ("SELL", {"stop_price": "51000", "order_price": "49000"}, "stop_limit"),
    ],
)
def test_a_stop_triggered_on_arrival_is_stored_as_answered_and_replays(
    auth_client, user, btc_at_50k, order_type, prices, kind
):
    # given a holding to sell
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.02")))
    payload = {"asset_id": "BTC", "order_type": order_type, "quantity": "0.01", "client_order_id": "s-1", **prices}
    # when
    first = auth_client.post(ORDERS, payload, format="json")
    again = auth_client.post(ORDERS, payload, format="json")
    shown = auth_client.get(f"{ORDERS}{first.json()['order_id']}/")
    # then: filled as a stop; the same stop is stored, so the retry is its replay, not a 409
    assert (first.status_code, again.status_code) == (201, 200), again.json()
    body = first.json()
    assert (body["status"], body["kind"], body["stop_price"]) == ("COMPLETED", kind, prices["stop_price"])
    assert body["triggered_at"] == body["created_at"]
    assert again.json() == body
    assert shown.json() == body
    stored = Order.objects.get(client_order_id="s-1")
    assert (stored.kind, stored.stop_price, stored.triggered_at) == (
        kind,
        Decimal(prices["stop_price"]),
        stored.created_at,
    )
    assert CashTransaction.objects.filter(user=user).count() == 3


def test_an_order_that_rested_and_failed_later_replays_as_the_order_it_was_answered(auth_client, user, btc, set_price):
    # given: a stop BUY rested (201), then the market gapped past its hold and it FAILED
    set_price("BTC", "50000")
    payload = {
        "asset_id": "BTC",
        "order_type": "BUY",
        "quantity": "0.18",  # holds 0.18 x 52000 x 1.05 = 9828.00 of 10000.00
        "stop_price": "52000",
        "client_order_id": "gap-1",
    }
    rested = auth_client.post(ORDERS, payload, format="json")
    set_price("BTC", "60000")
    process_resting_orders()
    # when
    again = auth_client.post(ORDERS, payload, format="json")
    # then: the replay is that order (200, now FAILED), not a 422 it was never answered
    assert (rested.status_code, again.status_code) == (201, 200)
    assert (again.json()["order_id"], again.json()["status"]) == (rested.json()["order_id"], "FAILED")


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
            place_order(
                user=user,
                request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("1"), client_order_id="k"),
            )
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
            request=OrderRequest(
                asset_id="BTC",
                order_type="BUY",
                quantity=Decimal("0.01"),
                order_price=Decimal("40000"),
                client_order_id="k",
            ),
        )
    # then: the market BUY failed as it should, the limit order is a 409 naming it, and
    # only the FAILED order exists, holding nothing
    failed = Order.objects.get()
    assert outcome == {"market": "insufficient_funds"}
    assert conflict.value.details == {"client_order_id": "k", "order_id": str(failed.order_id)}
    assert (failed.status, failed.order_price) == (Order.Status.FAILED, None)
    balance = UsdBalance.objects.get(user=user)
    assert (balance.current_balance, balance.held) == (Decimal("10000.00"), Decimal("0.00"))


@pytest.mark.django_db(transaction=True)
def test_identical_requests_racing_while_the_provider_flips_place_each_order_once(
    user, btc, coingecko_server, settings
):
    # given: every request asks the provider once (no breaker, no retry, no price reused),
    # and in each round it fails the first 0, 1 or 2 calls, whichever request makes them
    settings.PRICE_BREAKER_FAILURES = 1000
    settings.COINGECKO_RETRIES = 0
    settings.PRICE_CACHE_SECONDS = 0  # the last good price is in the database: reuse it for no time
    coingecko_server.set_price("bitcoin", "50000")
    token = issue_token(user=user).key

    def send(key: str):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        payload = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": key}
        return client.post(ORDERS, payload, format="json")

    outcomes = []
    for failures in [0, 1, 2] * 3:
        key = f"race-{len(outcomes)}"
        cache.clear()
        coingecko_server.fail_next(500, times=failures)
        # when: two identical requests race, then the client retries once the provider is up
        answers = run_concurrently(lambda key=key: send(key), lambda key=key: send(key))
        cache.clear()
        retried = send(key)
        outcomes.append((sorted(answer.status_code for answer in answers), retried.status_code))
        # then: every answer that is not a 503 is this key's one order
        placed = {answer.json()["order_id"] for answer in [*answers, retried] if answer.status_code != 503}
        assert placed == {str(Order.objects.get(client_order_id=key).order_id)}

    # then: a 503 burnt no key; two requests that both got a price placed one order
    assert outcomes == [([200, 201], 200), ([201, 503], 200), ([503, 503], 201)] * 3
    assert Order.objects.filter(status=Order.Status.COMPLETED).count() == 9
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("5500.00")
    assert CashTransaction.objects.filter(user=user).count() == 10
