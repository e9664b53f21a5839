"""Orders filled on arrival under a realistic fill model: a BUY at the ask plus slippage, a
SELL at the bid less it, the taker fee as a FEE ledger row in what the fill gave the account,
cost basis with the fee and realized P&L net of it (docs/DESIGN.md, "Fill model")."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders import selectors
from orders.fill_model import PROFILES, REALISTIC
from orders.selectors import reconcile_ledger
from orders.services import place_order, set_account_fill_model
from orders.validation import OrderRequest

ACTIVITIES = "/api/v1/activities/"


def _order(user, side: str, quantity: str, **prices):
    request = OrderRequest(
        asset_id="BTC", order_type=side, quantity=D(quantity), **{k: D(v) for k, v in prices.items()}
    )
    return place_order(user=user, request=request).order


@pytest.fixture
def realistic(user, btc, set_price):
    """alice on the realistic model, BTC at 50,000 with 10 BTC traded in the minute."""
    set_account_fill_model(user=user, profile=REALISTIC)
    set_price("BTC", "50000", volume=D("10"))
    return user


def test_a_realistic_market_buy_fills_at_the_ask_plus_slippage_and_pays_its_fee_in_btc(realistic):
    # when: 0.1 BTC, 1 % of the minute's volume
    order = _order(realistic, "BUY", "0.1")

    # then: ask 50,025 (10 bps spread), slippage 0.01^2 x 0.1 = 0.001 %: 50,025.50025
    assert order.executed_price == D("50025.50025")
    assert order.total_amount == D("5002.56")  # 0.1 x price, rounded up to the cent
    # the fee: 25 bps of 0.1 BTC in BTC, its own ledger row after the BUY's
    rows = list(AssetTransaction.objects.filter(order=order).order_by("id").values_list("transaction_type", "quantity"))
    assert rows == [("BUY", D("0.1")), ("FEE", D("-0.00025"))]
    holding = AssetBalance.objects.get(user=realistic, asset_id="BTC")
    assert holding.quantity == D("0.09975")
    # the cost basis is what was paid, fee included
    assert (holding.quantity * holding.average_purchase_price).quantize(D("0.01")) == D("5002.56")
    assert UsdBalance.objects.get(user=realistic).current_balance == D("10000") - D("5002.56")
    assert reconcile_ledger() == []


def test_a_realistic_market_sell_fills_at_the_bid_less_slippage_and_pays_its_fee_in_usd(realistic):
    # given
    _order(realistic, "BUY", "0.1")
    balance = UsdBalance.objects.get(user=realistic).current_balance
    basis = AssetBalance.objects.get(user=realistic, asset_id="BTC").average_purchase_price

    # when
    order = _order(realistic, "SELL", "0.05")

    # then: bid 49,975, slippage 0.005^2 x 0.1: 49,974.875062...
    assert order.executed_price == D("49974.87506250")
    proceeds = D("2498.74")  # rounded down
    fee = D("6.25")  # 25 bps of the proceeds, 6.246..., rounded up
    assert order.total_amount == proceeds
    cash = list(CashTransaction.objects.filter(order=order).order_by("id").values_list("transaction_type", "amount"))
    assert cash == [("SELL", proceeds), ("FEE", -fee)]
    assert UsdBalance.objects.get(user=realistic).current_balance == balance + proceeds - fee
    sold = AssetTransaction.objects.get(order=order)
    assert sold.realized_pnl == (proceeds - fee - D("0.05") * basis).quantize(D("0.01"))
    assert reconcile_ledger() == []


def test_fees_are_activities_of_their_own(realistic, auth_client):
    # given
    buy = _order(realistic, "BUY", "0.1")
    sell = _order(realistic, "SELL", "0.05")

    # when
    fees = auth_client.get(ACTIVITIES, {"activity_type": "FEE", "direction": "asc"}).json()["results"]

    # then: the BUY's in BTC, the SELL's in USD
    assert [(f["activity_type"], f["order_id"]) for f in fees] == [("FEE", str(buy.pk)), ("FEE", str(sell.pk))]
    assert fees[0]["quantity"] == "-0.00025"
    assert fees[1]["net_amount"] == "-6.25"


def test_an_account_without_its_own_model_fills_as_it_always_did_beside_a_realistic_one(realistic, other_user):
    # when
    order = _order(other_user, "BUY", "0.1")

    # then
    assert (order.executed_price, order.total_amount) == (D("50000"), D("5000.00"))
    assert not AssetTransaction.objects.filter(user=other_user, transaction_type="FEE").exists()


def test_a_process_that_does_not_know_the_accounts_model_finds_out_and_prices_again(realistic):
    # given: this process forgot that alice has her own model (another process set it)
    selectors._KNOWN_MODELS.clear()

    # when
    with CaptureQueriesContext(connection) as captured:
        order = _order(realistic, "BUY", "0.1")
    again = CaptureQueriesContext(connection)
    with again:
        _order(realistic, "BUY", "0.01")

    # then: the guarded statement wrote nothing, the model was read, the order priced again
    assert order.executed_price == D("50025.50025")
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # the asset, the price, the refused statement, the model, the statement
    assert len(statements) == 5
    # and from then on this process knows it: the price and the statement, as an ideal order
    assert len([q for q in again.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]) == 2


def test_the_deployments_realistic_model_fills_an_account_without_its_own_and_not_one_with_ideal(
    user, other_user, btc, set_price, settings
):
    # given: the deployment realistic, bob on ideal of his own
    for name, value in PROFILES[REALISTIC].as_dict().items():
        setattr(settings, f"FILL_{'PARTICIPATION' if name == 'fill_participation' else name.upper()}", value)
    set_account_fill_model(user=other_user, profile="ideal")
    selectors._KNOWN_MODELS.clear()
    set_price("BTC", "50000", volume=D("10"))

    # when
    alices = _order(user, "BUY", "0.1")
    bobs = _order(other_user, "BUY", "0.1")

    # then
    assert alices.executed_price == D("50025.50025")
    assert bobs.executed_price == D("50000")
    assert reconcile_ledger() == []


def test_a_marketable_limit_buy_fills_at_the_ask_plus_slippage_but_never_above_its_limit(realistic):
    # when: a limit between the mid and the ask rests; one above the ask fills, capped at it
    below_ask = _order(realistic, "BUY", "0.05", order_price="50010")
    capped = _order(realistic, "BUY", "0.05", order_price="50025.1")  # the ask plus slippage: 50,025.125...

    # then
    assert below_ask.status == "PENDING"
    assert (capped.status, capped.executed_price) == ("COMPLETED", D("50025.1"))


def test_a_model_changed_by_another_process_is_found_by_the_statement(realistic):
    # given: another process set alice's model back to ideal (this one still knows realistic)
    from orders import selectors as known
    from orders.models import AccountFillModel

    remembered = dict(known._KNOWN_MODELS)
    set_account_fill_model(user=realistic, profile="ideal")
    known._KNOWN_MODELS.clear()
    known._KNOWN_MODELS.update(remembered)
    assert AccountFillModel.objects.get(user=realistic).profile == "ideal"

    # when
    order = _order(realistic, "BUY", "0.1")

    # then: priced as realistic, refused by the statement, priced again as ideal
    assert (order.executed_price, order.total_amount) == (D("50000"), D("5000.00"))
    assert not AssetTransaction.objects.filter(order=order, transaction_type="FEE").exists()


def test_a_notional_buy_never_costs_more_than_its_notional_under_a_spread_and_slippage(realistic):
    # when
    request = OrderRequest(asset_id="BTC", order_type="BUY", notional=D("1000.00"))
    order = place_order(user=realistic, request=request).order

    # then
    assert order.status == "COMPLETED"
    assert order.total_amount <= D("1000.00")
    assert order.executed_price > D("50025")  # at the ask plus slippage


def test_a_notional_buy_priced_by_a_process_that_did_not_know_the_model_is_sized_again(realistic):
    # given: this process forgot that alice has her own model, so it first sizes the order at
    # the deployment's (ideal) price, 50,000
    selectors._KNOWN_MODELS.clear()

    # when
    request = OrderRequest(asset_id="BTC", order_type="BUY", notional=D("1000.00"))
    order = place_order(user=realistic, request=request).order

    # then: sized again at the realistic worst price, it costs no more than its notional
    assert order.status == "COMPLETED"
    assert order.executed_price > D("50025")
    assert order.total_amount <= D("1000.00")
    assert order.quantity < D("0.02")  # 1,000 / 50,000 would have been 0.02
    assert reconcile_ledger() == []
