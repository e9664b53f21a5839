"""Resets among everything else an account does, over random sequences (hypothesis): deposits,
withdrawals, market and resting orders, fills by the processor as the market moves, cancels
and resets. After every step the ledger explains every cent and every hold
(``reconcile_ledger``), and after a reset the account holds its cash and nothing else
(docs/DESIGN.md, "Reset and exports", "Ledgers")."""

from __future__ import annotations

import contextlib
import itertools
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from balances.models import AccountReset, AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import deposit, withdraw
from core.exceptions import DomainError
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import cancel_all_orders, place_order, process_resting_orders, reset_account
from orders.validation import OrderRequest

pytestmark = pytest.mark.django_db

_people = itertools.count()

PROPERTY = hypothesis_settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
cents = st.integers(1, 500_000).map(lambda n: D(n).scaleb(-2))  # 0.01 to 5000.00
price = st.integers(4_000_000, 6_000_000).map(lambda n: D(n).scaleb(-2))  # 40000.00 to 60000.00
quantity = st.integers(1, 20).map(lambda n: D(n).scaleb(-3))  # 0.001 to 0.020 BTC
STEP = st.one_of(
    st.tuples(st.just("deposit"), cents),
    st.tuples(st.just("withdraw"), cents),
    st.tuples(st.sampled_from(["market_buy", "market_sell"]), quantity),
    st.tuples(st.sampled_from(["limit_buy", "limit_sell", "stop_buy", "stop_sell"]), st.tuples(quantity, price)),
    st.tuples(st.just("market_moves"), price),
    st.tuples(st.just("cancel_all"), st.none()),
    st.tuples(st.just("reset"), st.one_of(st.none(), st.integers(0, 2_000_000).map(lambda n: D(n).scaleb(-2)))),
)


def apply(trader, step, value) -> None:
    if step == "deposit":
        deposit(user=trader, amount=value)
    elif step == "withdraw":
        withdraw(user=trader, amount=value)
    elif step in ("market_buy", "market_sell"):
        place_order(
            user=trader, request=OrderRequest(asset_id="BTC", order_type=step.split("_")[1].upper(), quantity=value)
        )
    elif step in ("limit_buy", "limit_sell", "stop_buy", "stop_sell"):
        kind, side = step.split("_")
        amount, at = value
        prices = {"order_price": at} if kind == "limit" else {"stop_price": at}
        place_order(
            user=trader, request=OrderRequest(asset_id="BTC", order_type=side.upper(), quantity=amount, **prices)
        )
    elif step == "cancel_all":
        cancel_all_orders(user=trader)
    elif step == "reset":
        reset_account(user=trader, cash=value)


def explained(trader) -> None:
    """Every cent and every hold of ``trader`` explained by the ledgers and the open orders."""
    usd = UsdBalance.objects.get(user=trader)
    cash_rows = CashTransaction.objects.filter(user=trader)
    assert usd.current_balance == sum(cash_rows.values_list("amount", flat=True), D("0"))
    # each row's balance_after is the running sum of the rows before it and itself
    running = D("0")
    for amount, balance_after in cash_rows.order_by("pk").values_list("amount", "balance_after"):
        running += amount
        assert balance_after == running
    open_buys = Order.objects.filter(user=trader, status="PENDING", order_type="BUY")
    assert usd.held == sum(open_buys.values_list("held_amount", flat=True), D("0"))
    assert reconcile_ledger() == []


@PROPERTY
@given(steps=st.lists(STEP, min_size=1, max_size=14))
def test_money_is_explained_by_the_ledger_through_any_sequence_with_resets(make_user, btc, set_price, steps):
    # given a trader with 10,000.00 and BTC at 50,000
    trader = make_user(f"resetter{next(_people)}")
    set_price("BTC", "50000")

    for step, value in steps:
        # when
        with contextlib.suppress(DomainError):  # refused (no funds, nothing to sell, ...): nothing moved
            apply(trader, step, value)
        if step == "market_moves":
            set_price("BTC", str(value))
            process_resting_orders()

        # then
        explained(trader)
        if step == "reset":
            # the account holds its cash and nothing else: no order rests, nothing is held
            reset = AccountReset.objects.filter(user=trader).order_by("-pk").first()
            cash = D("10000.00") if value is None else value
            usd = UsdBalance.objects.get(user=trader)
            assert (reset.cash, usd.current_balance, usd.held) == (cash, cash, D("0.00"))
            assert reset.cash_transaction.balance_after == cash
            assert not Order.objects.filter(user=trader, status="PENDING").exists()
            assert not AssetBalance.objects.filter(user=trader).exclude(quantity=0, held_quantity=0).exists()

    # and the asset ledger explains the holding: buys, minus sells, minus what resets took out
    rows = AssetTransaction.objects.filter(user=trader)
    signed = sum((-q if kind == "SELL" else q for kind, q in rows.values_list("transaction_type", "quantity")), D("0"))
    holding = AssetBalance.objects.filter(user=trader).first()
    assert (holding.quantity if holding else D("0")) == signed
