"""Starting a paper account over: POST /api/v1/account/reset/ and orders.services.reset_account
(docs/DESIGN.md, "Reset and exports"). One transaction under the user lock cancels every open
order (holds released, each announced), takes every holding out through a RESET asset row,
sets the cash through a RESET cash row, and records an AccountReset; credentials stay."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import create_api_key, issue_token
from balances.models import AccountReset, AssetBalance, AssetTransaction, CashTransaction
from core.exceptions import Conflict, InvalidRequest
from orders.events import Event, OrderEvent
from orders.models import Order, OrderEventRecord
from orders.selectors import reconcile_ledger
from orders.services import place_order, reset_account
from orders.validation import OrderRequest
from tests.support.api import error_code
from tests.support.balances import usd_balance_and_held

RESET = "/api/v1/account/reset/"


def buy(user, quantity: str, **prices) -> Order:
    return place_order(
        user=user,
        request=OrderRequest(
            asset_id="BTC", order_type="BUY", quantity=D(quantity), **{k: D(v) for k, v in prices.items()}
        ),
    ).order


def sell(user, quantity: str, **prices) -> Order:
    return place_order(
        user=user,
        request=OrderRequest(
            asset_id="BTC", order_type="SELL", quantity=D(quantity), **{k: D(v) for k, v in prices.items()}
        ),
    ).order


@pytest.fixture
def trader(user, btc, set_price):
    """alice: bought 0.03 BTC at 50,000 (1,500.00), rests a BUY limit at 40,000 for 0.01 (holds
    400.00), a stop BUY at 60,000 for 0.01 (holds 630.00) and a SELL limit at 70,000 for 0.01
    (holds 0.01 BTC): 8,500.00 USD, 1,030.00 held."""
    set_price("BTC", "50000")
    buy(user, "0.03")
    buy(user, "0.01", order_price="40000")
    buy(user, "0.01", stop_price="60000")
    sell(user, "0.01", order_price="70000")
    return user


def order_events() -> list[OrderEvent]:
    return [
        OrderEvent.from_json(payload)
        for payload in OrderEventRecord.objects.order_by("id").values_list("payload", flat=True)
    ]


# --- the service -----------------------------------------------------------------------


def test_a_reset_cancels_open_orders_takes_holdings_out_and_sets_the_cash(trader):
    # given
    pending = list(Order.objects.filter(status="PENDING").order_by("created_at").values_list("pk", flat=True))
    OrderEventRecord.objects.all().delete()

    # when
    result = reset_account(user=trader, cash=D("2500.00"))

    # then the cash is the amount, nothing is held, the holding is empty with its average price reset
    reset = result.reset
    assert result.created is True
    assert usd_balance_and_held(trader) == (D("2500.00"), D("0.00"))
    holding = AssetBalance.objects.get(user=trader)
    assert (holding.quantity, holding.held_quantity, holding.average_purchase_price) == (D("0"), D("0"), D("0"))
    assert (holding.total_bought, holding.total_sold) == (D("0.03"), D("0"))  # lifetime totals stay
    # every open order cancelled, by the reset, and announced as such
    assert (
        list(Order.objects.filter(pk__in=pending).values_list("status", "held_amount", "failure_reason"))
        == [("CANCELLED", D("0.00"), "Account reset.")] * 3
    )
    events = order_events()
    assert [(e.event, e.order["order_id"], e.order["status"]) for e in events] == [
        (Event.CANCELLED, str(order_id), "CANCELLED") for order_id in pending
    ]
    # one RESET row in each ledger: the holding out without a price or P&L, the cash difference
    btc_row = AssetTransaction.objects.get(transaction_type="RESET")
    assert (btc_row.quantity, btc_row.price_per_unit, btc_row.total_amount, btc_row.realized_pnl) == (
        D("-0.03"),
        None,
        None,
        None,
    )
    cash_row = CashTransaction.objects.get(transaction_type="RESET")
    assert (cash_row.amount, cash_row.balance_after, cash_row.note) == (D("-6000.00"), D("2500.00"), "Account reset")
    # the record: what it answered, and the instant history starts over from
    assert (reset.cash, reset.cash_transaction, reset.cancelled_orders) == (
        D("2500.00"),
        cash_row,
        [str(order_id) for order_id in pending],
    )
    assert reset.positions == [{"asset_id": "BTC", "quantity": "0.03"}]
    assert reset.created_at >= max(cash_row.created_at, btc_row.created_at)
    assert reconcile_ledger() == []


def test_a_reset_to_the_cash_already_there_still_records_itself(user, db):
    # when alice, who never traded, resets to her 10,000.00
    reset = reset_account(user=user).reset

    # then a RESET row of 0.00 and the record; nothing else moved
    assert list(CashTransaction.objects.filter(user=user).values_list("transaction_type", "amount")) == [
        ("RESET", D("0.00")),
        ("DEPOSIT", D("10000.00")),
    ]
    assert (reset.cash, reset.cancelled_orders, reset.positions) == (D("10000.00"), [], [])
    assert usd_balance_and_held(user) == (D("10000.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_a_reset_with_no_cash_starts_over_with_the_initial_balance(trader, settings):
    settings.INITIAL_USD_BALANCE = D("1234.56")
    assert reset_account(user=trader).reset.cash == D("1234.56")
    assert usd_balance_and_held(trader) == (D("1234.56"), D("0.00"))


def test_a_replayed_reset_moves_nothing_and_answers_the_first(trader, set_price, money_snapshot):
    # given a reset, then a trade after it
    first = reset_account(user=trader, cash=D("5000.00"), client_reference="start-over-1").reset
    buy(trader, "0.01")
    before = money_snapshot(trader)
    resets = AccountReset.objects.count()

    # when the same request comes again
    again = reset_account(user=trader, cash=D("5000.00"), client_reference="start-over-1")

    # then the first reset, and the trade after it is still there
    assert (again.created, again.reset.pk) == (False, first.pk)
    assert money_snapshot(trader) == before
    assert usd_balance_and_held(trader) == (D("4500.00"), D("0.00"))
    assert AccountReset.objects.count() == resets


def test_a_client_reference_used_for_another_cash_amount_is_a_conflict_that_moves_nothing(trader, money_snapshot):
    reset_account(user=trader, cash=D("5000.00"), client_reference="start-over-1")
    before = money_snapshot(trader)
    with pytest.raises(Conflict):
        reset_account(user=trader, cash=D("6000.00"), client_reference="start-over-1")
    assert money_snapshot(trader) == before


def test_one_client_reference_is_per_user(trader, other_user):
    reset_account(user=trader, cash=D("5000.00"), client_reference="same")
    assert reset_account(user=other_user, cash=D("7000.00"), client_reference="same").created is True
    assert usd_balance_and_held(other_user) == (D("7000.00"), D("0.00"))


@pytest.mark.parametrize(
    ("cash", "problem"),
    [
        (D("-0.01"), "Must not be negative."),
        (D("10.001"), "At most 2 decimal places."),
        (D("1000000000.01"), "At most 1000000000.00 (MAX_USD_BALANCE)."),
        (D("NaN"), "At most 2 decimal places."),
    ],
)
def test_a_cash_amount_no_balance_may_hold_is_refused_before_anything_moves(trader, money_snapshot, cash, problem):
    before = money_snapshot(trader)
    with pytest.raises(InvalidRequest) as refused:
        reset_account(user=trader, cash=cash)
    assert refused.value.details == {"cash": [problem]}
    assert money_snapshot(trader) == before
    assert AccountReset.objects.count() == 0


def test_after_a_reset_the_account_trades_from_scratch(trader, set_price):
    # given
    reset_account(user=trader, cash=D("1000.00"))

    # when it buys again at another price
    set_price("BTC", "20000")
    buy(trader, "0.01")

    # then the holding's average is the new purchase's alone
    holding = AssetBalance.objects.get(user=trader)
    assert (holding.quantity, holding.average_purchase_price) == (D("0.01"), D("20000"))
    assert usd_balance_and_held(trader) == (D("800.00"), D("0.00"))
    assert reconcile_ledger() == []


def test_a_staff_reset_records_the_actor_and_reason_on_the_reset_its_rows_and_the_orders(trader, staff_user):
    # when
    reset = reset_account(user=trader, cash=D("100.00"), actor=staff_user, reason="  ticket 42  ").reset

    # then
    assert (reset.actor, reset.reason, reset.by_back_office) == (staff_user, "ticket 42", True)
    rows = [
        *CashTransaction.objects.filter(transaction_type="RESET"),
        *AssetTransaction.objects.filter(transaction_type="RESET"),
    ]
    assert {(row.actor_id, row.note) for row in rows} == {(staff_user.pk, "ticket 42")}
    assert set(Order.objects.filter(status="CANCELLED").values_list("actor_id", flat=True)) == {staff_user.pk}


def test_the_reset_is_a_fixed_number_of_statements_whatever_it_takes_out(trader, make_asset, set_price, staff_user):
    # given a second holding and open orders on both assets
    from balances.services import adjust_asset_balance

    eth = make_asset("ETH")
    adjust_asset_balance(user=trader, asset=eth, quantity=D("2"), reason="r", actor=staff_user)

    # when
    with CaptureQueriesContext(connection) as captured:
        reset_account(user=trader, cash=D("10.00"), client_reference="r-1")

    # then: the user lock, the key, the holdings, the open orders, their swap, their events,
    # the holdings' update, their rows, the balance, its row, the record (and the savepoints)
    statements = [q["sql"].split()[0] for q in captured.captured_queries]
    assert [s for s in statements if s not in ("SAVEPOINT", "RELEASE")] == [
        "SELECT",  # the user lock
        "SELECT",  # an earlier reset with this client_reference
        "SELECT",  # the holdings, locked
        "SELECT",  # the open orders
        "UPDATE",  # every one cancelled
        "INSERT",  # their events
        "UPDATE",  # the holdings emptied
        "INSERT",  # their RESET rows
        "UPDATE",  # the USD balance
        "INSERT",  # its RESET row
        "INSERT",  # the AccountReset
    ]
    locks = [q["sql"] for q in captured.captured_queries if "FOR NO KEY UPDATE" in q["sql"]]
    assert [sql.split(" FROM ")[1].split()[0] for sql in locks] == ['"balances_usdbalance"', '"balances_assetbalance"']


# --- the database's rules ----------------------------------------------------------------


def test_the_database_refuses_to_change_or_delete_a_reset(user, db):
    from django.db import IntegrityError, transaction

    reset = reset_account(user=user).reset
    for statement in (
        "UPDATE balances_accountreset SET cash = 1 WHERE id = %s",
        "DELETE FROM balances_accountreset WHERE id = %s",
    ):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [reset.pk])


# --- the endpoint ----------------------------------------------------------------------


def test_post_reset_answers_the_reset_and_a_replay_the_same_body(trader, auth_client):
    # given
    pending = [
        str(pk) for pk in Order.objects.filter(status="PENDING").order_by("created_at").values_list("pk", flat=True)
    ]

    # when
    first = auth_client.post(RESET, {"cash": "2500.00", "client_reference": "go-again"}, format="json")
    again = auth_client.post(RESET, {"cash": "2500", "client_reference": "go-again"}, format="json")

    # then
    assert first.status_code == 201
    body = first.json()
    assert body == {
        "reset_id": AccountReset.objects.get().pk,
        "created_at": body["created_at"],
        "cash": "2500.00",
        "cash_change": "-6000.00",
        "cancelled_orders": pending,
        "positions": [{"asset_id": "BTC", "quantity": "0.03"}],
        "client_reference": "go-again",
        "by_back_office": False,
    }
    assert (again.status_code, again.json()) == (200, body)
    balance = auth_client.get("/api/v1/balance/").json()
    assert (balance["current_balance"], balance["held"]) == ("2500.00", "0.00")
    assert auth_client.get("/api/v1/asset-balances/").json() == []
    assert auth_client.get("/api/v1/orders/?status=open").json()["results"] == []


def test_post_reset_without_a_body_starts_over_with_the_initial_balance(trader, auth_client):
    response = auth_client.post(RESET)
    assert (response.status_code, response.json()["cash"], response.json()["client_reference"]) == (
        201,
        "10000.00",
        None,
    )


def test_the_token_and_the_api_keys_keep_working_after_a_reset(trader, auth_client):
    # given a key
    new = create_api_key(user=trader, name="bot")
    key_client = APIClient(HTTP_APCA_API_KEY_ID=new.api_key.key_id, HTTP_APCA_API_SECRET_KEY=new.secret_key)

    # when
    assert auth_client.post(RESET, {"cash": "300.00"}, format="json").status_code == 201

    # then
    assert auth_client.get("/api/v1/balance/").json()["current_balance"] == "300.00"
    assert key_client.get("/api/v1/balance/").json()["current_balance"] == "300.00"
    assert key_client.get("/v2/account").json()["cash"] == "300.00"


def test_a_session_may_reset(trader):
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(trader)
    assert client.post(RESET, {"cash": "1.00"}, format="json").status_code == 201


def test_an_api_key_may_not_reset_and_nothing_moves(trader, money_snapshot):
    # given
    new = create_api_key(user=trader, name="bot")
    key_client = APIClient(HTTP_APCA_API_KEY_ID=new.api_key.key_id, HTTP_APCA_API_SECRET_KEY=new.secret_key)
    before = money_snapshot(trader)

    # when
    response = key_client.post(RESET, {"cash": "1.00"}, format="json")

    # then
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"
    assert response.json()["error"]["message"] == (
        "API keys cannot reset the account; use your token (auth/token/) or a session."
    )
    assert money_snapshot(trader) == before


def test_a_reset_needs_authentication(api_client, db):
    response = api_client.post(RESET, {"cash": "1.00"}, format="json")
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert AccountReset.objects.count() == 0


def test_a_reset_touches_only_the_callers_account(trader, other_user, set_price, auth_client, money_snapshot):
    # given bob with a holding and an open order
    buy(other_user, "0.01")
    buy(other_user, "0.01", order_price="30000")
    bobs = money_snapshot(other_user)

    # when alice resets, naming bob too
    response = auth_client.post(f"{RESET}?username=bob", {"cash": "1.00"}, format="json")

    # then alice's account is reset, bob's is untouched, and the answer names nothing of his
    assert response.status_code == 201
    assert money_snapshot(other_user) == bobs
    assert usd_balance_and_held(trader) == (D("1.00"), D("0.00"))
    assert AccountReset.objects.get().user == trader
    assert not set(response.json()["cancelled_orders"]) & {
        str(pk) for pk in Order.objects.filter(user=other_user).values_list("pk", flat=True)
    }


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"cash": "-1.00"}, "cash", "validation_error"),
        ({"cash": "1.001"}, "cash", "validation_error"),
        ({"cash": "1e3"}, "cash", "validation_error"),
        ({"cash": "1000000000.01"}, "cash", "validation_error"),
        ({"cash": "\u0661\u0660"}, "cash", "validation_error"),  # Arabic-Indic digits
        ({"cash": True}, "cash", "validation_error"),
        ({"cash": None}, "cash", "validation_error"),
        ({"client_reference": ""}, "client_reference", "validation_error"),
        ({"client_reference": "x" * 65}, "client_reference", "validation_error"),
        ({"client_reference": "has space"}, "client_reference", "validation_error"),
        ({"cash": "1.00", "keep_positions": True}, "keep_positions", "unknown_field"),
    ],
)
def test_bad_input_is_a_400_that_moves_nothing(trader, auth_client, money_snapshot, body, field, code):
    before = money_snapshot(trader)
    response = auth_client.post(RESET, body, format="json")
    assert response.status_code == 400
    assert error_code(response) == code
    assert list(response.json()["error"]["details"]) == [field]
    assert money_snapshot(trader) == before
    assert AccountReset.objects.count() == 0


def test_a_malformed_body_is_a_400(trader, auth_client):
    response = auth_client.post(RESET, "{not json", content_type="application/json")
    assert (response.status_code, error_code(response)) == (400, "malformed_request")


def test_another_cash_under_a_used_client_reference_is_a_409(trader, auth_client, money_snapshot):
    auth_client.post(RESET, {"cash": "5.00", "client_reference": "k"}, format="json")
    before = money_snapshot(trader)
    response = auth_client.post(RESET, {"cash": "6.00", "client_reference": "k"}, format="json")
    assert (response.status_code, error_code(response)) == (409, "conflict")
    assert money_snapshot(trader) == before


def test_get_is_not_allowed(auth_client):
    response = auth_client.get(RESET)
    assert (response.status_code, error_code(response)) == (405, "method_not_allowed")


def test_the_endpoint_costs_the_service_and_authentication(trader, django_assert_num_queries):
    # given
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=trader).key}")

    # then the token (with its user), the service's 11 statements, 2 savepoint statements
    with django_assert_num_queries(14):
        assert client.post(RESET, {"client_reference": "q"}, format="json").status_code == 201
    # and a replay: the token, the user lock, the reset with its cash row
    with django_assert_num_queries(5):
        assert client.post(RESET, {"client_reference": "q"}, format="json").status_code == 200


def test_the_answer_is_json_with_decimals_as_strings(trader, auth_client):
    body = json.loads(auth_client.post(RESET, {"cash": "0"}, format="json").content)
    assert (body["cash"], body["cash_change"]) == ("0.00", "-8500.00")


def test_reconcile_ledger_counts_reset_rows_and_catches_one_that_explains_nothing(trader, btc):
    # given a reset (its rows explain the empty holding), then a stray RESET row written by hand
    reset_account(user=trader, cash=D("1000.00"))
    assert reconcile_ledger() == []
    buy(trader, "0.01")
    AssetTransaction.objects.create(user=trader, asset=btc, transaction_type="RESET", quantity=D("-0.004"))

    # then the holding no longer matches its ledger, and reconcile_ledger says so
    assert [str(m) for m in reconcile_ledger()] == [
        "alice: BTC quantity is 0.010000000000000000, its ledger explains 0.006000000000000000"
    ]
