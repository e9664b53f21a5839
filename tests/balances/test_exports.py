"""GET /api/v1/activities/ and /api/v1/portfolio/history/ with ?format=csv (or Accept:
text/csv): every row of the filter as a CSV file, the JSON's columns and values row for row,
streamed in keyset chunks under WSGI and ASGI alike (docs/DESIGN.md, "Reset and exports")."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import issue_token
from balances.history_api import ACTIVITY_TEXT
from balances.services import adjust_asset_balance, adjust_usd_balance, deposit, withdraw
from core.api.csv_export import CsvExportMixin
from orders.services import place_order, reset_account
from orders.validation import OrderRequest
from tests.support.api import as_csv_cells, asgi_get, csv_table, error_code, json_pages

ACTIVITIES = "/api/v1/activities/"
HISTORY = "/api/v1/portfolio/history/"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ACTIVITY_HEADER = [
    "activity_id",
    "activity_type",
    "created_at",
    "asset_id",
    "side",
    "quantity",
    "price",
    "net_amount",
    "realized_pnl",
    "order_id",
    "client_reference",
    "note",
    "balance_after",
]
HISTORY_HEADER = [
    "timestamp",
    "equity",
    "profit_loss",
    "profit_loss_pct",
    "cash_flow",
    "base_value",
    "timeframe",
    "period",
]


def at(minutes: float):
    return time_machine.travel(T0 + timedelta(minutes=minutes), tick=False)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    return client


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(CsvExportMixin, "csv_chunk_rows", 3)


@pytest.fixture
def busy_account(make_user, staff_user, btc, eth, set_price):
    return make_busy_account(make_user, staff_user, eth, set_price)


def make_busy_account(make_user, staff_user, eth, set_price):
    """alice over an hour: deposits and withdrawals, buys and sells of BTC and ETH, staff
    adjustments (one with a note a spreadsheet would run), a reset at 30 min, and more after
    it; several rows share an instant across both ledgers."""
    with at(0):
        alice = make_user("alice")
    for minute in range(1, 30, 3):
        with at(minute):
            set_price("BTC", str(50000 + minute * 10))
            set_price("ETH", "2000")
            deposit(user=alice, amount=D("100.00"), client_reference=f"dep-{minute}")
            place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.001")))
            place_order(user=alice, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=D("0.01")))
        with at(minute + 1):
            place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=D("0.0005")))
            withdraw(user=alice, amount=D("1.00"))
    with at(29):
        adjust_usd_balance(user=alice, amount=D("-2.50"), reason="=cmd|' /C calc'!A0", actor=staff_user)
        adjust_asset_balance(user=alice, asset=eth, quantity=D("0.5"), reason="airdrop", actor=staff_user)
    with at(30):
        reset_account(user=alice, cash=D("5000.00"), client_reference="+start")
    with at(31):
        set_price("BTC", "40000")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01")))
        deposit(user=alice, amount=D("10.00"))
    return alice


# --- activities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"direction": "asc"},
        {"activity_type": "FILL"},
        {"activity_type": "RESET,DEPOSIT", "direction": "asc"},
        {"asset_id": "ETH"},
        {"after": "2026-03-02T12:10:00Z", "until": "2026-03-02T12:31:00Z"},
        {"activity_type": "CASH_ADJUSTMENT"},
    ],
)
def test_the_activities_export_is_every_activity_of_the_filter_row_for_row_with_the_json_pages(
    busy_account, small_chunks, params
):
    # given
    client = client_for(busy_account)

    # when
    pages = json_pages(client, ACTIVITIES, {**params, "page_size": 4})
    export = client.get(ACTIVITIES, {**params, "format": "csv"})

    # then the JSON's columns, each of its rows in its order, as the JSON writes them
    header, *rows = csv_table(export)
    assert header == ACTIVITY_HEADER == list(pages[0])
    assert rows == [as_csv_cells(row, ACTIVITY_TEXT) for row in pages]
    assert len(rows) == len(pages) > 0


def test_an_activity_reads_as_the_json_writes_it(busy_account):
    # when
    header, *rows = csv_table(client_for(busy_account).get(ACTIVITIES, {"format": "csv", "direction": "asc"}))
    by_type = {}
    for row in rows:
        by_type.setdefault(row[1], dict(zip(header, row, strict=True)))

    # then
    assert {k: by_type["FILL"][k] for k in ("side", "quantity", "price", "net_amount", "balance_after")} == {
        "side": "BUY",
        "quantity": "0.001",
        "price": "50010",
        "net_amount": "-50.01",
        "balance_after": "",
    }
    assert by_type["CASH_ADJUSTMENT"]["note"] == "'=cmd|' /C calc'!A0"  # a formula, written as text
    assert by_type["RESET"]["activity_type"] == "RESET"


def test_a_page_token_starts_the_export_there(busy_account, small_chunks):
    # given the fifth activity's id
    client = client_for(busy_account)
    everything = json_pages(client, ACTIVITIES, {"page_size": 500})

    # when
    _, *rows = csv_table(client.get(ACTIVITIES, {"format": "csv", "page_token": everything[4]["activity_id"]}))

    # then every activity after it
    assert [row[0] for row in rows] == [row["activity_id"] for row in everything[5:]]


def test_the_activities_export_is_named_for_the_user_and_the_day(busy_account):
    with time_machine.travel(datetime(2026, 12, 7, 9, tzinfo=UTC)):
        response = client_for(busy_account).get(ACTIVITIES, HTTP_ACCEPT="text/csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="alice-activities-2026-12-07.csv"'


def test_another_users_activities_are_404_and_nothing_leaks(busy_account, make_user, support_staff):
    # given
    bob = make_user("bob")

    # when
    refused = client_for(bob).get(ACTIVITIES, {"format": "csv", "username": "alice"})
    own = csv_table(client_for(bob).get(ACTIVITIES, {"format": "csv"}))
    staff = csv_table(client_for(support_staff).get(ACTIVITIES, {"format": "csv", "username": "alice"}))

    # then
    assert (refused.status_code, refused["Content-Type"], error_code(refused)) == (404, "application/json", "not_found")
    assert [row[1] for row in own[1:]] == ["DEPOSIT"]
    assert len(staff) - 1 == len(json_pages(client_for(busy_account), ACTIVITIES, {"page_size": 500}))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"activity_type": "DIVIDEND"}, "activity_type"),
        ({"after": "2026-02-30T00:00:00Z"}, "after"),
        ({"page_token": "garbage"}, "page_token"),
        ({"untill": "2026-03-02T00:00:00Z"}, "untill"),
    ],
)
def test_bad_activity_filters_are_a_400_in_the_json_error_shape(busy_account, params, field):
    response = client_for(busy_account).get(ACTIVITIES, {**params, "format": "csv"})
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert list(response.json()["error"]["details"]) == [field]


def test_the_activities_export_reads_one_query_a_chunk(busy_account, small_chunks):
    # given
    client = client_for(busy_account)
    count = len(json_pages(client, ACTIVITIES, {"page_size": 500, "activity_type": "DEPOSIT"}))

    # when
    with CaptureQueriesContext(connection) as captured:
        csv_table(client.get(ACTIVITIES, {"format": "csv", "activity_type": "DEPOSIT"}))

    # then the token, then one query per chunk of three
    assert count == 12
    assert len(captured.captured_queries) == 1 + 4
    assert all(" OFFSET " not in q["sql"] for q in captured.captured_queries)


def test_the_first_chunk_of_an_export_is_one_query(busy_account, django_assert_num_queries):
    client = client_for(busy_account)
    with django_assert_num_queries(2):  # the token, the first (and only) chunk
        csv_table(client.get(ACTIVITIES, {"format": "csv", "activity_type": "RESET"}))


# --- portfolio history -------------------------------------------------------------------------


def test_the_history_export_is_a_row_per_bucket_with_the_jsons_values(busy_account):
    # given
    client = client_for(busy_account)
    params = {"period": "1D", "timeframe": "5Min", "date_end": "2026-03-02T13:00:00Z"}

    # when
    body = client.get(HISTORY, params).json()
    header, *rows = csv_table(client.get(HISTORY, {**params, "format": "csv"}))

    # then each bucket's values, the base, timeframe and period on each row
    assert header == HISTORY_HEADER
    assert rows == [
        [
            body["timestamp"][i],
            body["equity"][i],
            body["profit_loss"][i],
            body["profit_loss_pct"][i] or "",
            body["cash_flow"][i],
            body["base_value"],
            "5Min",
            "1D",
        ]
        for i in range(len(body["timestamp"]))
    ]
    assert rows[0][0] == "2026-03-02T12:30:00Z"  # it starts over at the reset
    assert (rows[0][5], rows[-1][1]) == ("5000.00", "5010.00")


def test_a_long_history_export_crosses_chunks(busy_account, small_chunks):
    client = client_for(busy_account)
    params = {"period": "1D", "timeframe": "1Min", "date_end": "2026-03-02T13:00:00Z"}
    body = client.get(HISTORY, params).json()
    _, *rows = csv_table(client.get(HISTORY, {**params, "format": "csv"}))
    assert [row[0] for row in rows] == body["timestamp"]
    assert len(rows) == 31


def test_the_history_export_is_named_and_costs_what_the_json_does(busy_account, django_assert_num_queries):
    client = client_for(busy_account)
    # the token, then the history in its transaction (savepoint, SET LOCAL, the statement, release)
    with time_machine.travel(datetime(2026, 12, 7, 9, tzinfo=UTC)), django_assert_num_queries(5):
        response = client.get(HISTORY, {"date_end": "2026-03-03T00:00:00Z"}, HTTP_ACCEPT="text/csv")
        csv_table(response)
    assert response["Content-Disposition"] == 'attachment; filename="alice-portfolio-history-2026-12-07.csv"'


def test_a_history_refused_is_a_400_in_the_json_error_shape_and_anothers_a_404(busy_account, make_user):
    client = client_for(busy_account)
    too_long = client.get(HISTORY, {"period": "1M", "timeframe": "1Min", "format": "csv"})
    assert (too_long.status_code, too_long["Content-Type"], error_code(too_long)) == (
        400,
        "application/json",
        "validation_error",
    )
    other = client_for(make_user("bob")).get(HISTORY, {"username": "alice", "format": "csv"})
    assert (other.status_code, error_code(other)) == (404, "not_found")


def test_format_csv_is_not_offered_where_there_is_no_export(busy_account):
    response = client_for(busy_account).get("/api/v1/balance/", {"format": "csv"})
    assert (response.status_code, error_code(response)) == (404, "not_found")


# --- ASGI ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_exports_are_asynchronous_streams_with_the_same_rows(
    make_user, staff_user, btc, eth, set_price, small_chunks
):
    # given (committed: the ASGI requests run on connections of their own)
    alice = make_busy_account(make_user, staff_user, eth, set_price)
    token = issue_token(user=alice).key
    wsgi = APIClient()
    wsgi.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    for path, params in [
        (ACTIVITIES, {"format": "csv"}),
        (ACTIVITIES, {"format": "csv", "direction": "asc", "asset_id": "BTC"}),
        (HISTORY, {"format": "csv", "period": "1D", "timeframe": "1Min", "date_end": "2026-03-02T13:00:00Z"}),
    ]:
        # when
        status, headers, body = asgi_get(path, token=token, params=params)

        # then
        assert (status, headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
        rows = list(csv.reader(io.StringIO(body.decode())))
        assert rows == csv_table(wsgi.get(path, params))
        assert len(rows) > 4  # several chunks
