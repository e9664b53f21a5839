"""GET /api/v1/orders/?format=csv (or Accept: text/csv): every order of the filter as a CSV
file, the JSON's columns and values, row for row in the list's order, read in keyset chunks
and streamed under WSGI and ASGI alike (docs/DESIGN.md, "Reset and exports")."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import issue_token
from core.api.csv_export import CsvExportMixin
from orders.api import ORDER_TEXT
from orders.services import cancel_order, place_order
from orders.validation import OrderRequest
from tests.support.api import as_csv_cells, asgi_get, csv_table, error_code, json_pages

ORDERS = "/api/v1/orders/"
HEADER = [
    "order_id",
    "username",
    "asset_id",
    "order_type",
    "quantity",
    "order_price",
    "executed_price",
    "filled_quantity",
    "filled_avg_price",
    "total_amount",
    "held_amount",
    "held_quantity",
    "kind",
    "stop_price",
    "triggered_at",
    "notional",
    "time_in_force",
    "replaces",
    "replaced_by",
    "by_back_office",
    "status",
    "failure_reason",
    "client_order_id",
    "expires_at",
    "created_at",
    "updated_at",
    "filled_at",
]


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    return client


@pytest.fixture
def small_chunks(monkeypatch):
    """Three rows a query, so that a few orders cross several chunks."""
    monkeypatch.setattr(CsvExportMixin, "csv_chunk_rows", 3)


@pytest.fixture
def orders_of_every_kind(user, btc, eth, set_price):
    """alice's 17 orders over BTC and ETH: market buys and sells, resting limits and stops,
    some cancelled, one with a client_order_id a spreadsheet would run as a formula."""
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    placed = []

    def order(asset_id, order_type, quantity, **extra):
        placed.append(
            place_order(
                user=user, request=OrderRequest(asset_id=asset_id, order_type=order_type, quantity=D(quantity), **extra)
            ).order
        )
        return placed[-1]

    for n in range(4):
        order("BTC", "BUY", "0.01")
        order("ETH", "BUY", "0.1", client_order_id=f"eth-{n}")
    order("BTC", "SELL", "0.01")
    for _ in range(3):
        order("BTC", "BUY", "0.01", order_price=D("40000"))
        order("ETH", "SELL", "0.05", stop_price=D("1500"))
    cancel_order(order=order("BTC", "BUY", "0.01", order_price=D("30000"), client_order_id="=HYPERLINK(1)"))
    order("ETH", "BUY", "0.1", order_price=D("1000"), client_order_id="-minus")
    return placed


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({}, 17),
        ({"direction": "asc"}, 17),
        ({"status": "open"}, 7),
        ({"status": "closed", "direction": "asc"}, 10),
        ({"asset_id": "btc"}, 9),
        ({"asset_id": "BTC,ETH", "kind": "limit"}, 5),
        ({"order_type": "sell"}, 4),
        ({"status": "CANCELLED"}, 1),
        ({"client_order_id": "eth-2"}, 1),
    ],
)
def test_the_export_is_every_order_of_the_filter_row_for_row_with_the_json_pages(
    user, orders_of_every_kind, small_chunks, params, count
):
    # given
    client = client_for(user)

    # when
    pages = json_pages(client, ORDERS, {**params, "page_size": 4})
    export = client.get(ORDERS, {**params, "format": "csv"})

    # then the JSON's columns, and each of its rows in its order, as the JSON writes them
    header, *rows = csv_table(export)
    assert header == HEADER == list(pages[0])
    assert rows == [as_csv_cells(row, ORDER_TEXT) for row in pages]
    assert len(rows) == count


def test_a_row_reads_as_the_json_writes_it(user, orders_of_every_kind):
    # when
    header, *rows = csv_table(client_for(user).get(ORDERS, {"format": "csv", "status": "CANCELLED"}))

    # then USD with two decimals, quantities and prices plain, null empty, booleans as JSON's,
    # and the formula a spreadsheet would run written as text
    row = dict(zip(header, rows[0], strict=True))
    cancelled = orders_of_every_kind[-2]
    assert {name: row[name] for name in ("quantity", "order_price", "held_amount", "executed_price")} == {
        "quantity": "0.01",
        "order_price": "30000",
        "held_amount": "0.00",
        "executed_price": "",
    }
    assert (row["order_id"], row["status"], row["by_back_office"], row["client_order_id"]) == (
        str(cancelled.pk),
        "CANCELLED",
        "false",
        "'=HYPERLINK(1)",
    )


def test_orders_of_one_instant_are_exported_in_the_lists_order_across_chunks(user, btc, set_price, small_chunks):
    # given ten orders placed at one instant (ties on created_at, broken by id)
    set_price("BTC", "50000")
    with time_machine.travel(datetime(2026, 3, 2, 12, tzinfo=UTC), tick=False):
        set_price("BTC", "50000")
        for _ in range(10):
            place_order(
                user=user,
                request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("100")),
            )
    client = client_for(user)

    for direction in ("desc", "asc"):
        # when
        pages = json_pages(client, ORDERS, {"direction": direction, "page_size": 4})
        _, *rows = csv_table(client.get(ORDERS, {"direction": direction, "format": "csv"}))

        # then every order once, as the pages list them: by id within the instant
        ids = [row[0] for row in rows]
        assert ids == [row["order_id"] for row in pages]
        assert ids == sorted(ids, reverse=direction == "desc")
        assert len(set(ids)) == 10


def test_accept_text_csv_asks_for_the_export_too_named_for_the_user_and_the_day(user, orders_of_every_kind):
    # when
    with time_machine.travel(datetime(2026, 12, 7, 23, 59, tzinfo=UTC)):
        response = client_for(user).get(ORDERS, HTTP_ACCEPT="text/csv")

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="alice-orders-2026-12-07.csv"'
    assert len(csv_table(response)) == 1 + 17


def test_a_user_without_orders_gets_the_header_alone(user):
    assert csv_table(client_for(user).get(ORDERS, {"format": "csv"})) == [HEADER]


def test_another_users_orders_are_404_and_back_office_staff_export_them(
    user, orders_of_every_kind, other_user, support_staff
):
    # when
    refused = client_for(other_user).get(ORDERS, {"format": "csv", "username": "alice"})
    with time_machine.travel(datetime(2026, 12, 7, 8, tzinfo=UTC)):
        staff = client_for(support_staff).get(ORDERS, {"format": "csv", "username": "alice"})
    own = client_for(other_user).get(ORDERS, {"format": "csv"})

    # then a 404 in the error shape (JSON, whatever was asked), and nothing of alice's leaks
    assert (refused.status_code, refused["Content-Type"]) == (404, "application/json")
    assert error_code(refused) == "not_found"
    assert staff["Content-Disposition"] == 'attachment; filename="alice-orders-2026-12-07.csv"'
    assert len(csv_table(staff)) == 1 + 17
    assert csv_table(own) == [HEADER]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"after": "yesterday"}, "after"),
        ({"direction": "sideways"}, "direction"),
        ({"kind": "trailing"}, "kind"),
    ],
)
def test_bad_input_is_a_400_in_the_json_error_shape(user, orders_of_every_kind, params, field):
    response = client_for(user).get(ORDERS, {**params, "format": "csv"})
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]


def test_the_export_needs_authentication(api_client, db):
    response = api_client.get(ORDERS, {"format": "csv"})
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


def test_the_first_chunk_is_one_query_and_each_further_chunk_one_more(user, orders_of_every_kind, small_chunks):
    # given
    client = client_for(user)

    def queries(params) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(ORDERS, {**params, "format": "csv"})
            csv_table(response)
        return len(captured.captured_queries)

    # then the token, then one query per chunk of three (each with its user joined): 17 rows
    # are six chunks; three rows one; one asset's orders read through its index likewise
    assert queries({"status": "CANCELLED"}) == 1 + 1
    assert queries({"client_order_id": "eth-1"}) == 1 + 1
    assert queries({}) == 1 + 6
    assert queries({"asset_id": "ETH"}) == 1 + 3  # 8 ETH orders


def test_each_chunk_continues_from_the_last_row_without_offset(user, orders_of_every_kind, small_chunks):
    with CaptureQueriesContext(connection) as captured:
        csv_table(client_for(user).get(ORDERS, {"format": "csv"}))
    chunks = [q["sql"] for q in captured.captured_queries if '"orders_order"' in q["sql"]]
    assert len(chunks) == 6
    assert all(" OFFSET " not in sql and "LIMIT 4" in sql for sql in chunks)
    assert all('"orders_order"."created_at" <=' in sql for sql in chunks[1:])


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_export_is_an_asynchronous_stream_with_the_same_rows(user, btc, set_price, small_chunks):
    # given
    set_price("BTC", "50000")
    for n in range(7):
        place_order(
            user=user,
            request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), client_order_id=f"a-{n}"),
        )
    token = issue_token(user=user).key
    wsgi = APIClient()
    wsgi.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    # when
    status, headers, body = asgi_get(ORDERS, token=token, params={"format": "csv", "direction": "asc"})

    # then
    assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert list(csv.reader(io.StringIO(body.decode()))) == csv_table(
        wsgi.get(ORDERS, {"format": "csv", "direction": "asc"})
    )
    assert body.decode().count("\r\n") == 1 + 7
