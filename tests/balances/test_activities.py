"""GET /api/v1/activities/: one feed of fills and cash movements from both ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import issue_token
from balances.history import ActivityType, get_activities
from balances.services import adjust_asset_balance, adjust_usd_balance, deposit, withdraw
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code

ACTIVITIES = "/api/v1/activities/"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(minutes: float):
    return time_machine.travel(T0 + timedelta(minutes=minutes), tick=False)


@pytest.fixture
def history(make_user, staff_user, btc, eth, set_price):
    """alice: opened at T0 (10,000.00 deposit), +500 at 1 min, buys 0.01 BTC at 50,000 at
    2 min, withdraws 25 at 3 min, sells 0.005 BTC at 51,000 at 4 min, gets 1 ETH and 2.50
    USD of adjustments at 5 min, buys 1 ETH at 2,500 at 5 min too (the same instant)."""
    with at(0):
        alice = make_user("alice")
    with at(1):
        deposit(user=alice, amount=Decimal("500.00"), client_reference="dep-1")
    with at(2):
        set_price("BTC", "50000")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    with at(3):
        withdraw(user=alice, amount=Decimal("25.00"))
    with at(4):
        set_price("BTC", "51000")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=Decimal("0.005")))
    with at(5):
        adjust_asset_balance(user=alice, asset=eth, quantity=Decimal("1"), reason="airdrop", actor=staff_user)
        adjust_usd_balance(user=alice, amount=Decimal("2.50"), reason="fee refund", actor=staff_user)
        set_price("ETH", "2500")
        place_order(user=alice, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1")))
    return alice


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    return client


def summary(rows) -> list[tuple]:
    return [(r["activity_type"], r["created_at"][11:19], r["asset_id"], r["side"], r["net_amount"]) for r in rows]


def test_the_feed_merges_both_ledgers_newest_first(history):
    # when
    response = client_for(history).get(ACTIVITIES)

    # then fills from the asset ledger, movements from the cash ledger (not the fills' cash side)
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert summary(body["results"]) == [
        ("CASH_ADJUSTMENT", "12:05:00", None, None, "2.50"),
        ("FILL", "12:05:00", "ETH", "BUY", "-2500.00"),
        ("ASSET_ADJUSTMENT", "12:05:00", "ETH", None, None),
        ("FILL", "12:04:00", "BTC", "SELL", "255.00"),
        ("WITHDRAWAL", "12:03:00", None, None, "-25.00"),
        ("FILL", "12:02:00", "BTC", "BUY", "-500.00"),
        ("DEPOSIT", "12:01:00", None, None, "500.00"),
        ("DEPOSIT", "12:00:00", None, None, "10000.00"),
    ]


def test_a_fill_and_a_deposit_show_what_a_user_needs(history):
    # when
    rows = client_for(history).get(ACTIVITIES, {"page_size": 500}).json()["results"]

    # then
    sell = next(r for r in rows if r["side"] == "SELL")
    deposit_row = next(r for r in rows if r["client_reference"] == "dep-1")
    assert {k: v for k, v in sell.items() if k not in ("activity_id", "order_id")} == {
        "activity_type": "FILL",
        "created_at": "2026-03-02T12:04:00Z",
        "asset_id": "BTC",
        "side": "SELL",
        "quantity": "0.005",
        "price": "51000",
        "net_amount": "255.00",
        "realized_pnl": "5.00",
        "client_reference": None,
        "note": "",
        "balance_after": None,
    }
    assert len(sell["order_id"]) == 36
    assert sell["activity_id"].startswith("20260302120400000000::A")
    assert {k: v for k, v in deposit_row.items() if k != "activity_id"} == {
        "activity_type": "DEPOSIT",
        "created_at": "2026-03-02T12:01:00Z",
        "asset_id": None,
        "side": None,
        "quantity": None,
        "price": None,
        "net_amount": "500.00",
        "realized_pnl": None,
        "order_id": None,
        "client_reference": "dep-1",
        "note": "",
        "balance_after": "10500.00",
    }
    adjustment = next(r for r in rows if r["activity_type"] == "ASSET_ADJUSTMENT")
    assert (adjustment["quantity"], adjustment["note"]) == ("1", "airdrop")


@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_following_next_walks_every_activity_once_in_order(history, page_size, direction):
    # given the whole feed in one page
    client = client_for(history)
    everything = [r["activity_id"] for r in client.get(ACTIVITIES, {"page_size": 500}).json()["results"]]

    # when
    seen, url, pages = [], f"{ACTIVITIES}?page_size={page_size}&direction={direction}", 0
    while url:
        body = client.get(url).json()
        seen += [r["activity_id"] for r in body["results"]]
        url = body["next"]
        pages += 1

    # then, ties of one instant across both ledgers included
    assert seen == (everything if direction == "desc" else everything[::-1])
    assert len(everything) == 8
    assert pages == -(-8 // page_size)  # no empty last page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"activity_type": "FILL"}, [("FILL", "ETH"), ("FILL", "BTC"), ("FILL", "BTC")]),
        ({"activity_type": "deposit,WITHDRAWAL"}, [("WITHDRAWAL", None), ("DEPOSIT", None), ("DEPOSIT", None)]),
        ({"asset_id": "btc"}, [("FILL", "BTC"), ("FILL", "BTC")]),
        ({"asset_id": "ETH", "activity_type": "ASSET_ADJUSTMENT"}, [("ASSET_ADJUSTMENT", "ETH")]),
        ({"asset_id": "ETH", "activity_type": "DEPOSIT"}, []),
        ({"after": "2026-03-02T12:02:00Z", "until": "2026-03-02T12:05:00Z"}, [("FILL", "BTC"), ("WITHDRAWAL", None)]),
        ({"until": "2026-03-02T12:01:00Z"}, [("DEPOSIT", None)]),
    ],
)
def test_filters(history, params, expected):
    rows = client_for(history).get(ACTIVITIES, params).json()["results"]
    assert [(r["activity_type"], r["asset_id"]) for r in rows] == expected


def test_one_query_per_page_however_long_the_feed(history):
    # given
    client = client_for(history)

    def count(params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(ACTIVITIES, params).status_code == 200
        return len(captured.captured_queries)

    # then the token and the feed; an asset filter adds the asset check
    assert count({"page_size": 1}) == count({"page_size": 500}) == 2
    assert count({"asset_id": "BTC,ETH", "activity_type": "FILL", "after": "2026-03-02T12:00:00Z"}) == 3


def test_another_users_activities_are_not_seen(history, make_user, support_staff):
    # given bob with his own deposit
    bob = make_user("bob")
    deposit(user=bob, amount=Decimal("7.00"))
    bob_client = client_for(bob)

    # when
    own = bob_client.get(ACTIVITIES).json()["results"]
    other = bob_client.get(ACTIVITIES, {"username": "alice"})

    # then
    assert [r["net_amount"] for r in own] == ["7.00", "10000.00"]
    assert other.status_code == 404
    assert error_code(other) == "not_found"
    # and back-office staff read alice's feed with ?username=
    staff_rows = client_for(support_staff).get(ACTIVITIES, {"username": "alice"}).json()["results"]
    assert len(staff_rows) == 8


def test_the_feed_needs_authentication(api_client, db):
    response = api_client.get(ACTIVITIES)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"activity_type": "TRADE"}, "activity_type"),
        ({"activity_type": ","}, "activity_type"),
        ({"asset_id": "NOPE"}, "asset_id"),
        ({"after": "not a date"}, "after"),
        ({"until": "2026-02-30T00:00:00Z"}, "until"),
        ({"after": "2026-03-02T12:00:00Z", "until": "2026-03-02T11:00:00Z"}, "until"),
        ({"direction": "sideways"}, "direction"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size"),
        ({"page_token": "garbage"}, "page_token"),
        ({"page_token": "20261399000000000000::A1"}, "page_token"),
    ],
)
def test_bad_filters_are_a_400_in_the_error_shape(history, params, field):
    response = client_for(history).get(ACTIVITIES, params)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]


def test_an_unknown_or_misspelt_filter_is_refused_not_ignored(history):
    # a misspelt ?untill= once returned everything
    response = client_for(history).get(ACTIVITIES, {"untill": "2026-03-02T12:01:00Z"})
    assert response.status_code == 400
    assert error_code(response) == "unknown_field"
    assert list(response.json()["error"]["details"]) == ["untill"]


def test_the_selector_takes_plain_arguments(history):
    # the Alpaca layer calls it without DRF
    fills = get_activities(user=history, activity_types=[ActivityType.FILL], page_size=2, newest_first=False)
    assert [(a.activity_type, a.side, a.net_amount) for a in fills] == [
        (ActivityType.FILL, "BUY", Decimal("-500.00")),
        (ActivityType.FILL, "SELL", Decimal("255.00")),
    ]
    rest = get_activities(
        user=history, activity_types=[ActivityType.FILL], page_token=fills[-1].activity_id, newest_first=False
    )
    assert [(a.asset_id, a.side) for a in rest] == [("ETH", "BUY")]


def test_a_reset_shows_as_reset_activities_its_cash_and_each_holding_taken_out(history, staff_user):
    from orders.services import reset_account

    # given alice's feed, then a back-office reset to 3,000.00 at 6 min
    with at(6):
        reset_account(user=history, cash=Decimal("3000.00"), actor=staff_user, reason="ticket 9")

    # when
    client = client_for(history)
    rows = client.get(ACTIVITIES).json()["results"]
    resets = client.get(ACTIVITIES, {"activity_type": "reset"}).json()["results"]
    btc_only = client.get(ACTIVITIES, {"asset_id": "BTC", "activity_type": "RESET"}).json()["results"]

    # then the cash row (the change, the balance it set) and a row per holding (what it held,
    # taken out: no price, no cash, no P&L), newest first, ahead of everything before
    expected = [
        ("RESET", None, None, "-4732.50", "3000.00"),  # from 7,732.50
        ("RESET", "ETH", "-2", None, None),
        ("RESET", "BTC", "-0.005", None, None),
    ]
    assert [
        (r["activity_type"], r["asset_id"], r["quantity"], r["net_amount"], r["balance_after"]) for r in rows[:3]
    ] == expected
    assert [
        (r["activity_type"], r["asset_id"], r["quantity"], r["net_amount"], r["balance_after"]) for r in resets
    ] == expected
    assert {(r["side"], r["price"], r["realized_pnl"], r["note"]) for r in resets} == {(None, None, None, "ticket 9")}
    assert [(r["asset_id"], r["quantity"]) for r in btc_only] == [("BTC", "-0.005")]
    assert rows[3]["activity_type"] == "CASH_ADJUSTMENT"  # what came before is still there
