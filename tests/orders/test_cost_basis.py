"""The cost basis of a holding is the USD actually paid for it, rounding cent included."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances.selectors import calculate_portfolio_value
from tests.support.balances import usd_balance_and_held
from tests.support.orders import place_btc_order

pytestmark = pytest.mark.django_db

D = Decimal


def test_the_cost_basis_is_the_usd_paid_rounding_cent_included(user, btc, set_price):
    # given: 0.01 x 63389.3 = 633.893, paid 633.90
    set_price("BTC", "63389.3")

    # when
    place_btc_order(user, "BUY", "0.01")
    portfolio = calculate_portfolio_value(user=user)

    # then: the basis is what was paid (it was 633.89 before), and that cent is the P&L
    (value,) = portfolio.asset_balances
    assert (value.holding.average_purchase_price, value.cost_basis) == (D("63390"), D("633.90"))
    assert (value.market_value, value.unrealized_pnl, value.unrealized_pnl_percent) == (
        D("633.89"),
        D("-0.01"),
        D("0.00"),
    )
    assert usd_balance_and_held(user)[0] + value.cost_basis == D("10000.00")


def test_buying_at_the_average_price_again_keeps_a_round_basis(user, btc_at_50k):
    # given / when: two buys at 50000 with whole-cent costs
    place_btc_order(user, "BUY", "0.01")
    place_btc_order(user, "BUY", "0.03")

    # then the value at the same price is the basis: 0.00 P&L
    (value,) = calculate_portfolio_value(user=user).asset_balances
    assert (value.cost_basis, value.market_value, value.unrealized_pnl) == (D("2000.00"), D("2000.00"), D("0.00"))
