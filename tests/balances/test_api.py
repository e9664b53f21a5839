import json
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from assets.models import Asset
from balances.models import CashTransaction, UsdBalance
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code

User = get_user_model()


# --- auth ---------------------------------------------------------------------------


def test_register_creates_a_funded_user_and_returns_a_working_token(api_client, db):
    # when
    response = api_client.post(
        "/api/v1/auth/register/", {"username": "carol", "password": "a-long-passphrase-42"}, format="json"
    )
    # then
    assert response.status_code == 201
    token = response.json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    balance = api_client.get("/api/v1/balance/").json()
    assert balance == {
        **balance,
        "currency": "USD",
        "current_balance": "10000.00",
        "held": "0.00",
        "available": "10000.00",
    }
    assert CashTransaction.objects.filter(user__username="carol", transaction_type="DEPOSIT").count() == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "carol", "password": "123"},
        {"username": "carol", "password": "password"},
        {"username": "bad name!", "password": "a-long-passphrase-42"},
        {"username": "", "password": "a-long-passphrase-42"},
        {"username": "x" * 151, "password": "a-long-passphrase-42"},
        {"username": ["carol"], "password": "a-long-passphrase-42"},
        {"password": "a-long-passphrase-42"},
        {"username": "carol", "password": "a-long-passphrase-42", "email": "not-an-email"},
    ],
)
def test_register_rejects_bad_input_and_creates_nobody(api_client, db, payload):
    response = api_client.post("/api/v1/auth/register/", payload, format="json")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert User.objects.count() == 0


def test_register_race_on_one_username_is_400_not_500(db):
    # given a name the serializer saw as free but another request created meanwhile
    from balances.services import register_user
    from core.exceptions import InvalidRequest

    register_user(username="carol", password="a-long-passphrase-42")
    # when / then
    with pytest.raises(InvalidRequest):
        register_user(username="carol", password="a-long-passphrase-42")
    assert User.objects.filter(username="carol").count() == 1


def test_register_refuses_a_taken_username_in_any_case(api_client, user):
    response = api_client.post(
        "/api/v1/auth/register/", {"username": "ALICE", "password": "a-long-passphrase-42"}, format="json"
    )
    assert response.status_code == 400
    assert "username" in response.json()["error"]["details"]


def test_token_for_good_credentials_and_401_for_bad(api_client, user):
    good = api_client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "correct-horse-battery"}, format="json"
    )
    bad = api_client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert good.status_code == 200
    assert good.json()["token"] == Token.objects.get(user=user).key
    assert bad.status_code == 401
    assert error_code(bad) == "not_authenticated"


def test_invalid_token_is_401(api_client, db):
    api_client.credentials(HTTP_AUTHORIZATION="Token nope")
    response = api_client.get("/api/v1/balance/")
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


# --- balance, deposit, withdraw -----------------------------------------------------


def test_deposit_then_withdraw_moves_exact_cents_with_ledger_rows(auth_client, user):
    deposit = auth_client.post("/api/v1/balance/deposit/", {"amount": "250.50"}, format="json")
    withdraw = auth_client.post("/api/v1/balance/withdraw/", {"amount": 100}, format="json")
    assert deposit.status_code == withdraw.status_code == 201
    assert deposit.json()["transaction"]["balance_after"] == "10250.50"
    assert withdraw.json()["transaction"]["amount"] == "-100.00"
    assert withdraw.json()["balance"]["current_balance"] == "10150.50"
    ledger = auth_client.get("/api/v1/cash-transactions/").json()["results"]
    assert [row["transaction_type"] for row in ledger] == ["WITHDRAWAL", "DEPOSIT", "DEPOSIT"]


def test_withdraw_more_than_available_is_422_and_moves_nothing(auth_client, user):
    response = auth_client.post("/api/v1/balance/withdraw/", {"amount": "10000.01"}, format="json")
    assert response.status_code == 422
    assert error_code(response) == "insufficient_funds"
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")


@pytest.mark.parametrize(
    "amount", ["0", "-5", "NaN", "Infinity", "1e999", "0.001", "1" * 25, "", None, [1], True, "ten"]
)
def test_bad_amounts_are_400(auth_client, user, amount):
    response = auth_client.post("/api/v1/balance/deposit/", {"amount": amount}, format="json")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert CashTransaction.objects.filter(user=user).count() == 1


def test_deposit_replay_with_client_reference(auth_client, user):
    payload = {"amount": "10", "client_reference": "dep-1"}
    first = auth_client.post("/api/v1/balance/deposit/", payload, format="json")
    second = auth_client.post("/api/v1/balance/deposit/", payload, format="json")
    other = auth_client.post("/api/v1/balance/deposit/", {**payload, "amount": "11"}, format="json")
    assert (first.status_code, second.status_code, other.status_code) == (201, 200, 409)
    assert first.json()["transaction"]["id"] == second.json()["transaction"]["id"]
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10010.00")


def test_back_office_staff_see_another_users_balance_and_others_get_404(
    api_client, auth_client, support_staff, other_user
):
    assert auth_client.get("/api/v1/balance/", {"username": "bob"}).status_code == 404
    api_client.force_authenticate(support_staff)
    assert api_client.get("/api/v1/balance/", {"username": "bob"}).json()["current_balance"] == "10000.00"


# --- holdings, transactions, portfolio ----------------------------------------------


def _assets(n: int) -> list[Asset]:
    assets = [
        Asset(asset_id=f"A{i}", name=f"Asset {i}", quantity_decimals=8, reference_price=Decimal("10")) for i in range(n)
    ]
    Asset.objects.bulk_create(assets)
    return assets


def test_portfolio_values_holdings_at_current_prices(auth_client, user, btc, eth, set_price):
    # given
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.1")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1")))
    set_price("BTC", "55000")
    set_price("ETH", "1900")
    # when
    body = auth_client.get("/api/v1/portfolio/").json()
    # then
    assert body["usd_balance"]["current_balance"] == "3000.00"
    assert body["total_asset_value"] == "7400.00"
    assert body["total_cost_basis"] == "7000.00"
    assert body["total_unrealized_pnl"] == "400.00"
    assert body["total_portfolio_value"] == "10400.00"
    assert body["asset_count"] == 2
    assert body["price_source"] == "test"
    assert body["price_stale"] is False
    btc_row = next(row for row in body["asset_balances"] if row["asset_id"] == "BTC")
    assert btc_row["market_value"] == "5500.00"
    assert btc_row["unrealized_pnl"] == "500.00"
    assert btc_row["unrealized_pnl_percent"] == "10.00"


def test_holding_detail_and_404_for_one_not_held(auth_client, user, btc, set_price):
    set_price("BTC", "50000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.1")))
    assert auth_client.get("/api/v1/asset-balances/btc/").json()["quantity"] == "0.1"
    assert auth_client.get("/api/v1/asset-balances/ETH/").status_code == 404


@pytest.mark.parametrize(
    "segment", ["x" * 5000, "%F0%9F%92%B0", "'%3B%20DROP%20TABLE%20assets_asset%3B--", "%25", "..."]
)
def test_holding_detail_of_a_malformed_asset_id_is_a_404(auth_client, user, btc, segment, set_price):
    # given
    set_price("BTC", "50000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.1")))

    # when
    response = auth_client.get(f"/api/v1/asset-balances/{segment}/")

    # then
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_transactions_filter_by_asset_and_type(auth_client, user, btc, eth, set_price):
    set_price("BTC", "50000")
    set_price("ETH", "2000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.1")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="SELL", quantity=Decimal("0.5")))
    rows = auth_client.get("/api/v1/transactions/", {"asset_id": "ETH", "transaction_type": "SELL"}).json()["results"]
    assert [(r["asset_id"], r["transaction_type"], r["realized_pnl"]) for r in rows] == [("ETH", "SELL", "0.00")]


@pytest.mark.parametrize(("path", "queries"), [("/api/v1/portfolio/", 4), ("/api/v1/asset-balances/", 3)])
def test_portfolio_and_holdings_cost_the_same_queries_for_1_and_50_assets(
    auth_client, user, path, queries, set_price, django_assert_num_queries
):
    # given
    from django.utils import timezone

    from balances.services import update_asset_balance

    assets = _assets(50)
    for asset in assets:
        set_price(asset.asset_id, "10")

    def hold(asset):
        update_asset_balance(holding=None, user_id=user.pk, asset=asset, quantity=Decimal(1), at=timezone.now())

    def holdings_shown() -> int:
        body = auth_client.get(path).json()
        return len(body["asset_balances"] if isinstance(body, dict) else body)

    # when / then: the token with its user, (the USD balance,) the holdings in one statement,
    # their last good prices in one more
    hold(assets[0])
    with django_assert_num_queries(queries):
        assert holdings_shown() == 1
    for asset in assets[1:]:
        hold(asset)
    with django_assert_num_queries(queries):
        assert holdings_shown() == 50


def test_assets_list_shows_current_prices(auth_client, btc, eth, set_price):
    set_price("BTC", "50000")
    rows = auth_client.get("/api/v1/assets/").json()["results"]
    assert next((r["asset_id"], r["current_price"]) for r in rows) == ("BTC", "50000")
    assert auth_client.get("/api/v1/assets/btc/").json()["name"] == "Bitcoin"
    assert auth_client.get("/api/v1/assets/NOPE/").status_code == 404


def test_health_needs_no_auth(api_client, db):
    body = api_client.get("/api/v1/health/").json()
    assert body["database"] == "ok"
    assert body["price_provider"]["provider"] == "simulated"


def test_unknown_api_path_is_json_404(api_client, db, settings):
    # given DEBUG off, as in production (the test settings' default)
    settings.DEBUG = False
    response = api_client.get("/api/v1/nope/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_schema_and_swagger_ui_are_served_locally(api_client, db):
    assert api_client.get("/api/v1/schema/").status_code == 200
    page = api_client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_schema_decimal_patterns_take_what_the_api_takes(api_client, auth_client, btc, db):
    # given every decimal-string pattern of the schema: json.loads hands each object, however
    # deep, to the hook, so the test needs no walk of its own
    patterns = set()

    def collect(node: dict) -> dict:
        if node.get("type") == "string" and node.get("format") == "decimal":
            patterns.add(node["pattern"])
        return node

    json.loads(api_client.get("/api/v1/schema/?format=json").content, object_hook=collect)
    assert len(patterns) == 5  # USD, prices, quantities, and the fill model's basis points and shares

    # then each takes the numbers the API takes, and none takes what it answers with a 400
    for pattern in patterns:
        for accepted in ["1", "0.5", ".5", "5.", "-0.25", "10"]:
            assert re.match(pattern, accepted), (pattern, accepted)
        for refused in ["", ".", "-", "-.", "1e5", " 1", "1.2.3"]:
            assert not re.match(pattern, refused), (pattern, refused)
    for refused in ["", ".", "-"]:
        response = auth_client.post("/api/v1/balance/deposit/", {"amount": refused}, format="json")
        assert response.status_code == 400


def test_holdings_render_exactly_as_drf_would(user, btc, eth, set_price):
    # given holdings with long decimals and a stale-free price
    from rest_framework import serializers

    from balances.api import HoldingSerializer
    from balances.selectors import calculate_portfolio_value

    set_price("BTC", "50123.456789012345")
    set_price("ETH", "2000.5")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01234567")))
    place_order(user=user, request=OrderRequest(asset_id="ETH", order_type="BUY", quantity=Decimal("1.5")))
    holdings = calculate_portfolio_value(user=user).asset_balances
    serializer = HoldingSerializer()
    # when / then: the fast plan and DRF's generic field-by-field rendering agree on every value
    for holding in holdings:
        assert serializer.to_representation(holding) == serializers.Serializer.to_representation(serializer, holding)
