"""Fixtures of the trading tests: a snapshot of everything money, and alice holding BTC."""

from __future__ import annotations

import pytest

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders.models import Order
from tests.support.orders import place_btc_order


@pytest.fixture
def money_snapshot():
    """Everything a flow could move for ``user``, to compare before and after a failure."""

    def snapshot(user) -> dict:
        usd = UsdBalance.objects.get(user=user)
        return {
            "usd": (usd.current_balance, usd.held),
            "holdings": sorted(
                AssetBalance.objects.filter(user=user).values_list(
                    "asset_id", "quantity", "held_quantity", "average_purchase_price", "total_bought", "total_sold"
                )
            ),
            "cash_rows": CashTransaction.objects.filter(user=user).count(),
            "asset_rows": AssetTransaction.objects.filter(user=user).count(),
            "pending_orders": sorted(
                Order.objects.filter(user=user, status=Order.Status.PENDING).values_list("order_id", "held_amount")
            ),
        }

    return snapshot


@pytest.fixture
def holds_btc(user, btc_at_50k):
    """alice bought 0.1 BTC at 50000 for 5000.00."""
    place_btc_order(user, "BUY", "0.1")
