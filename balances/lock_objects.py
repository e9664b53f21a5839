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
