"""Row locks of the balances app, in the one order every flow takes them (docs/DESIGN.md,
"Lock order"): the user's ``UsdBalance`` first (the user lock), then the asset balances.

Enforced here rather than described, as pretix's ``lock_objects`` does: every function
refuses to run outside a transaction (a lock taken in autocommit ends with its own
statement, so it would protect nothing) and evaluates its queryset at once (an unevaluated
lock queryset locks nothing); several rows are locked in one statement, in the order of
their keys, so two flows that lock the same rows queue instead of deadlocking.
``no_key=True`` takes FOR NO KEY UPDATE, which does not block inserts of rows that
reference the locked one (ledger rows, orders) by foreign key.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.transaction import TransactionManagementError

from balances.models import AssetBalance, UsdBalance


def require_transaction(using: str = DEFAULT_DB_ALIAS) -> None:
    """Raise TransactionManagementError unless the caller is inside ``transaction.atomic``."""
    if not connections[using].in_atomic_block:
        raise TransactionManagementError(
            "Row locks and order transitions run inside transaction.atomic: outside it they would end with their "
            'own statement (docs/DESIGN.md, "Lock order").'
        )


def usd_balance_for_update(*, user_id: int) -> UsdBalance:
    """The user lock: the first lock of every flow that touches the user's money."""
    require_transaction()
    return UsdBalance.objects.select_for_update(no_key=True).get(user_id=user_id)


def asset_balances_for_update(*, user_id: int, asset_ids: Iterable[str]) -> dict[str, AssetBalance]:
    """The user's holdings of ``asset_ids`` that exist, by asset, locked in asset order in one
    statement. The caller holds the user lock."""
    require_transaction()
    locked = (
        AssetBalance.objects.select_for_update(no_key=True)
        .filter(user_id=user_id, asset_id__in=sorted(set(asset_ids)))
        .order_by("asset_id")
    )
    return {holding.asset_id: holding for holding in locked}


def asset_balance_for_update(*, user_id: int, asset_id: str) -> AssetBalance | None:
    """One holding, locked (None when the user never held the asset). The caller holds the user lock."""
    return asset_balances_for_update(user_id=user_id, asset_ids=[asset_id]).get(asset_id)


def held_asset_balances_for_update(*, user_id: int) -> list[AssetBalance]:
    """Every holding of the user with a quantity or a hold in it, locked in asset order in one
    statement (an account reset takes them all out). The caller holds the user lock."""
    require_transaction()
    return list(
        AssetBalance.objects.select_for_update(no_key=True)
        .filter(user_id=user_id)
        .exclude(quantity=0, held_quantity=0)
        .order_by("asset_id")
    )
