"""A /v2 market buy is the same one-statement fill as an /api/v1 one: same queries, same row."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import create_api_key
from balances.services import register_user
from orders.models import Order


def _queries(send) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = send()
    assert response.status_code in (200, 201), response.content
    # The test runs in a transaction, so the statement's own transaction is a savepoint here.
    return [query["sql"] for query in captured.captured_queries if "SAVEPOINT" not in query["sql"]]


def test_a_v2_market_buy_runs_the_same_queries_as_an_api_v1_one(db, btc, set_price):
    # given: a registered user (its token as registration issues it), both clients
    # authenticated, the price stored and the asset read once
    set_price("BTC", "50000")
    user, token = register_user(username="fast", password="correct-horse-battery")
    v1 = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    key = create_api_key(user=user, name="bot")
    v2 = APIClient(HTTP_APCA_API_KEY_ID=key.api_key.key_id, HTTP_APCA_API_SECRET_KEY=key.secret_key)
    v1.post("/api/v1/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.001"}, format="json")

    # when
    v1_queries = _queries(
        lambda: v1.post("/api/v1/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.001"}, format="json")
    )
    v2_queries = _queries(
        lambda: v2.post(
            "/v2/orders",
            {"symbol": "BTC/USD", "qty": 0.001, "side": "buy", "type": "market", "time_in_force": "gtc"},
            format="json",
        )
    )

    # then: authentication, the price (the last good one, read from the primary), then the
    # single statement that locks, debits, fills and writes the ledgers
    assert len(v2_queries) == len(v1_queries) == 3
    assert v2_queries[1] == v1_queries[1]
    assert v1_queries[1].startswith("SELECT asset_id, price, as_of, source, checked_at")
    assert v2_queries[2].startswith("\nWITH debit AS (")
    assert v1_queries[2].startswith("\nWITH debit AS (")
    assert list(Order.objects.values_list("placed_via", "api_key_id", "total_amount").order_by("created_at")) == [
        ("api", None, Decimal("50.00")),
        ("api", None, Decimal("50.00")),
        ("alpaca", key.api_key.key_id, Decimal("50.00")),
    ]
