"""Row locks of the balances app, in the one order every flow takes them (SPEC section 4):
the user's ``UsdBalance`` first (the user lock), then the asset balance.

Each function evaluates its queryset at once: an unevaluated lock queryset locks nothing.
``no_key=True`` takes FOR NO KEY UPDATE, which does not block inserts of rows that
reference the locked one (ledger rows, orders) by foreign key.
"""

from assets.models import Asset
from balances.models import AssetBalance, UsdBalance


def usd_balance_for_update(*, user_id: int) -> UsdBalance:
    return UsdBalance.objects.select_for_update(no_key=True).get(user_id=user_id)


def asset_balance_for_update(*, user_id: int, asset: Asset) -> AssetBalance | None:
    return AssetBalance.objects.select_for_update(no_key=True).filter(user_id=user_id, asset=asset).first()


def held_asset_balances_for_update(*, user_id: int) -> list[AssetBalance]:
    """Every holding of the user with a quantity or a hold in it, locked in asset order in one
    statement (an account reset takes them all out). The caller holds the user lock."""
    return list(
        AssetBalance.objects.select_for_update(no_key=True)
        .filter(user_id=user_id)
        .exclude(quantity=0, held_quantity=0)
        .order_by("asset_id")
    )
