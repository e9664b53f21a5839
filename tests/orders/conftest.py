"""Fixtures of the trading tests: a known market price and a snapshot of everything money."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from assets.prices import Quote, store_quotes
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders.models import Order


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Users are cheap here: the default hasher costs ~0.2 s a user and proves nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def set_price(settings):
    """``set_price("BTC", "50000")``: the market price every trade sees until changed.

    The quote goes into the price cache as if just fetched; the cache keeps it for an hour
    so that a slow test never falls back to the simulated market halfway through."""
    settings.PRICE_CACHE_SECONDS = 3600

    def set_(asset_id: str, price: str, *, as_of: datetime | None = None) -> Quote:
        quote = Quote(asset_id=asset_id, price=Decimal(price), as_of=as_of or timezone.now(), source="test")
        store_quotes([quote])
        return quote

    return set_


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
