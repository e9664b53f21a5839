"""What a test reads back of a user's money, straight from the rows."""

from __future__ import annotations

from decimal import Decimal

from balances.models import AssetBalance, UsdBalance


def usd_balance_and_held(user) -> tuple[Decimal, Decimal]:
    """The user's USD ``(current_balance, held)``."""
    balance = UsdBalance.objects.get(user=user)
    return balance.current_balance, balance.held


def asset_quantity_and_held(user, asset_id: str = "BTC") -> tuple[Decimal, Decimal]:
    """The user's holding of ``asset_id`` as ``(quantity, held_quantity)``."""
    row = AssetBalance.objects.get(user=user, asset_id=asset_id)
    return row.quantity, row.held_quantity


def asset_balance(user, asset_id: str = "BTC") -> AssetBalance:
    """The user's holding of ``asset_id``, the whole row."""
    return AssetBalance.objects.get(user=user, asset_id=asset_id)
