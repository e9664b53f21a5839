"""Caps (docs/DESIGN.md, "Money and precision"): every amount that would not fit its column, every deposit above
MAX_DEPOSIT and every credit past MAX_USD_BALANCE is a 4xx in the error shape, before
anything is written; a resting fill that would pass the cap fails that order, cleanly."""

from decimal import Decimal

import pytest

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import adjust_asset_balance, deposit
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order, process_resting_orders
from orders.validation import OrderRequest
from tests.support.api import error_code

ORDERS = "/api/v1/orders/"
DEPOSIT = "/api/v1/balance/deposit/"


def ledger_rows(user) -> tuple[int, int]:
    return CashTransaction.objects.filter(user=user).count(), AssetTransaction.objects.filter(user=user).count()


@pytest.mark.parametrize("amount", ["999999999999999999.99", "1000000.01", 1000001])
def test_a_deposit_above_max_deposit_is_400_and_moves_nothing(auth_client, user, amount):
    # when
    response = auth_client.post(DEPOSIT, {"amount": amount}, format="json")
    # then
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert response.json()["error"]["details"] == {"amount": ["At most 1000000.00 (MAX_DEPOSIT)."]}
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert ledger_rows(user) == (1, 0)


def test_a_deposit_of_exactly_max_deposit_is_taken(auth_client, user):
    response = auth_client.post(DEPOSIT, {"amount": "1000000.00"}, format="json")
    assert response.status_code == 201
    assert response.json()["balance"]["current_balance"] == "1010000.00"


def test_a_deposit_past_max_usd_balance_is_422_and_moves_nothing(auth_client, user, settings):
    # given a balance of 10000.00 and a cap of 10500.00
    settings.MAX_USD_BALANCE = Decimal("10500.00")
    # when
    over = auth_client.post(DEPOSIT, {"amount": "500.01"}, format="json")
    up_to = auth_client.post(DEPOSIT, {"amount": "500.00"}, format="json")
    # then
    assert over.status_code == 422
    assert error_code(over) == "balance_limit_exceeded"
    assert over.json()["error"]["details"] == {
        "current_balance": "10000.00",
        "credit": "500.01",
        "limit": "10500.00",
    }
    assert up_to.status_code == 201
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10500.00")
    assert ledger_rows(user) == (2, 0)


def test_a_market_buy_of_20000000000000_btc_is_400_and_stores_nothing(auth_client, user, btc_at_50k):
    # when: 1e18 USD, which does not fit the USD column (a 500 before)
    response = auth_client.post(
        ORDERS, {"asset_id": "BTC", "order_type": "BUY", "quantity": "20000000000000"}, format="json"
    )
    # then
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "MAX_USD_BALANCE" in response.json()["error"]["details"]["quantity"][0]
    assert Order.objects.count() == 0
    assert ledger_rows(user) == (1, 0)


def test_a_limit_order_worth_more_than_a_balance_may_hold_is_400(auth_client, user, btc_at_50k):
    response = auth_client.post(
        ORDERS,
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "1", "order_price": "1000000000.01"},
        format="json",
    )
    assert response.status_code == 400
    assert Order.objects.count() == 0


def test_a_market_sell_whose_proceeds_would_overflow_is_400_and_moves_nothing(
    auth_client, user, staff_user, btc_at_50k
):
    # given a holding (by a staff adjustment) worth 5e23 USD at the market
    adjust_asset_balance(user=user, asset=btc_at_50k, quantity=Decimal("1" + "0" * 19), reason="test", actor=staff_user)
    # when
    response = auth_client.post(
        ORDERS, {"asset_id": "BTC", "order_type": "SELL", "quantity": "1" + "0" * 19}, format="json"
    )
    # then
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert Order.objects.count() == 0
    assert AssetBalance.objects.get(user=user).quantity == Decimal("1" + "0" * 19)
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")


def test_a_market_sell_that_would_pass_the_balance_cap_fails_with_422(auth_client, user, btc_at_50k, settings):
    # given 0.1 BTC bought (9000.00 left) and a cap of 10000.00
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.02")))
    settings.MAX_USD_BALANCE = Decimal("10000.00")
    # when: proceeds 1000.00 would make 10000.00 -- fine; a deposit first makes it 10000.01
    deposit(user=user, amount=Decimal("0.01"))
    response = auth_client.post(ORDERS, {"asset_id": "BTC", "order_type": "SELL", "quantity": "0.02"}, format="json")
    # then
    assert response.status_code == 422, response.content
    assert error_code(response) == "balance_limit_exceeded"
    failed = Order.objects.get(order_type="SELL")
    assert (failed.status, failed.failure_code) == (Order.Status.FAILED, "balance_limit_exceeded")
    assert AssetBalance.objects.get(user=user).quantity == Decimal("0.02")
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9000.01")
    assert reconcile_ledger() == []


def test_a_resting_sell_whose_fill_would_pass_the_cap_fails_cleanly_and_others_still_fill(
    user, other_user, btc_at_50k, set_price, settings
):
    # given alice's and bob's resting SELLs at 60000
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.02")))
    place_order(user=other_user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    sell = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=Decimal("0.02"), order_price=Decimal("60000")),
    ).order
    others = place_order(
        user=other_user,
        request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=Decimal("0.01"), order_price=Decimal("60000")),
    ).order
    # and alice's balance grown to just under the cap (9000.00 + 1000.00, cap 10500.00)
    settings.MAX_USD_BALANCE = Decimal("10500.00")
    deposit(user=user, amount=Decimal("1000.00"))
    # when the market reaches 60000: alice's proceeds 1200.00 would make 11200.00
    set_price("BTC", "60000")
    report = process_resting_orders()
    # then
    sell.refresh_from_db()
    others.refresh_from_db()
    assert (sell.status, sell.failure_code, sell.held_quantity) == (Order.Status.FAILED, "balance_limit_exceeded", 0)
    assert others.status == Order.Status.COMPLETED
    assert (report.filled, report.failed) == (1, 0)
    holding = AssetBalance.objects.get(user=user)
    assert (holding.quantity, holding.held_quantity) == (Decimal("0.02"), Decimal("0"))
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
    assert reconcile_ledger() == []
