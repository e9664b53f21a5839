"""Decimals in answers (docs/DESIGN.md, "Money and precision"): quantities and prices without trailing zeros, USD
amounts with exactly two decimals, on every endpoint that shows them."""

from decimal import Decimal

import pytest

from orders.services import place_order
from orders.validation import OrderRequest


@pytest.fixture
def traded(user, btc, set_price):
    set_price("BTC", "63389.3")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    return user


def test_an_order_shows_plain_quantity_and_price_and_two_decimal_usd(auth_client, traded):
    # when
    order = auth_client.get("/api/v1/orders/").json()["results"][0]
    # then
    assert (order["quantity"], order["executed_price"], order["total_amount"]) == ("0.01", "63389.3", "633.90")
    assert (order["held_amount"], order["held_quantity"], order["order_price"]) == ("0.00", "0", None)


def test_holdings_portfolio_and_ledgers_show_the_same_conventions(auth_client, traded):
    # when
    holding = auth_client.get("/api/v1/asset-balances/BTC/").json()
    portfolio = auth_client.get("/api/v1/portfolio/").json()
    fill = auth_client.get("/api/v1/transactions/").json()["results"][0]
    cash = auth_client.get("/api/v1/cash-transactions/").json()["results"][0]
    asset = auth_client.get("/api/v1/assets/BTC/").json()
    # then
    assert {k: holding[k] for k in ("quantity", "held_quantity", "available_quantity", "total_sold")} == {
        "quantity": "0.01",
        "held_quantity": "0",
        "available_quantity": "0.01",
        "total_sold": "0",
    }
    assert (holding["current_price"], holding["market_value"], holding["unrealized_pnl_percent"]) == (
        "63389.3",
        "633.89",
        "0.00",
    )
    assert portfolio["usd_balance"]["current_balance"] == "9366.10"
    assert portfolio["asset_balances"] == [holding]
    assert (fill["quantity"], fill["price_per_unit"], fill["total_amount"]) == ("0.01", "63389.3", "633.90")
    assert (cash["amount"], cash["balance_after"]) == ("-633.90", "9366.10")
    assert asset["current_price"] == "63389.3"


def test_a_resting_sell_shows_the_quantity_it_holds(auth_client, traded):
    # given a limit SELL above the market
    response = auth_client.post(
        "/api/v1/orders/",
        {"asset_id": "BTC", "order_type": "SELL", "quantity": "0.004", "order_price": "70000"},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["held_quantity"], body["held_amount"]) == ("PENDING", "0.004", "0.00")
    assert auth_client.get("/api/v1/asset-balances/BTC/").json()["held_quantity"] == "0.004"
    # when it is cancelled, it holds nothing
    cancelled = auth_client.post(f"/api/v1/orders/{body['order_id']}/cancel/").json()
    assert (cancelled["status"], cancelled["held_quantity"]) == ("CANCELLED", "0")
