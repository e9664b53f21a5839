"""Reads Alpaca's API needs that no other app has in this shape: the account activities
feed (fills from the asset ledger, deposits and withdrawals from the cash ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from balances.models import AssetTransaction, CashTransaction

FILL, DEPOSIT, WITHDRAWAL = "FILL", "CSD", "CSW"
ACTIVITY_TYPES = (FILL, DEPOSIT, WITHDRAWAL)
_CASH_TYPES = {DEPOSIT: CashTransaction.Type.DEPOSIT, WITHDRAWAL: CashTransaction.Type.WITHDRAWAL}
# Ties on created_at are broken by ledger, then row id: cash rows sort before fills.
_LEDGER_RANK = {"c": 0, "f": 1}


@dataclass(frozen=True)
class Cursor:
    at: datetime
    ledger: str  # "c" cash, "f" fill
    pk: int

    def key(self) -> tuple:
        return (self.at, _LEDGER_RANK[self.ledger], self.pk)


@dataclass(frozen=True)
class Activity:
    activity_type: str
    at: datetime
    row: AssetTransaction | CashTransaction
    cursor: Cursor


def _after_cursor(cursor: Cursor | None, ledger: str, descending: bool) -> Q:
    """Rows strictly past ``cursor`` in the feed's order, for one ledger."""
    if cursor is None:
        return Q()
    strictly = "lt" if descending else "gt"
    same_instant = Q(created_at=cursor.at)
    if ledger == cursor.ledger:
        same_instant &= Q(**{f"pk__{strictly}": cursor.pk})
    elif (_LEDGER_RANK[ledger] < _LEDGER_RANK[cursor.ledger]) != descending:
        same_instant = Q(pk__in=[])  # this ledger's rows at that instant were already shown
    return Q(**{f"created_at__{strictly}": cursor.at}) | same_instant


def get_activities(
    *,
    user,
    activity_types: list[str],
    after: datetime | None = None,
    until: datetime | None = None,
    descending: bool = True,
    page_size: int = 100,
    cursor: Cursor | None = None,
) -> list[Activity]:
    """One page of the user's activities of ``activity_types``, newest first unless
    ``descending`` is False: two queries at most (one per ledger), merged."""
    window = Q()
    if after is not None:
        window &= Q(created_at__gt=after)
    if until is not None:
        window &= Q(created_at__lte=until)
    order = ("-created_at", "-pk") if descending else ("created_at", "pk")
    found: list[Activity] = []
    if FILL in activity_types:
        fills = AssetTransaction.objects.filter(
            window,
            _after_cursor(cursor, "f", descending),
            user=user,
            order__isnull=False,
            status=AssetTransaction.Status.COMPLETED,
            transaction_type__in=[AssetTransaction.Type.BUY, AssetTransaction.Type.SELL],
        ).order_by(*order)[:page_size]
        found += [Activity(FILL, row.created_at, row, Cursor(row.created_at, "f", row.pk)) for row in fills]
    cash_types = [_CASH_TYPES[kind] for kind in activity_types if kind in _CASH_TYPES]
    if cash_types:
        cash = CashTransaction.objects.filter(
            window, _after_cursor(cursor, "c", descending), user=user, transaction_type__in=cash_types
        ).order_by(*order)[:page_size]
        kinds = {value: kind for kind, value in _CASH_TYPES.items()}
        found += [
            Activity(kinds[row.transaction_type], row.created_at, row, Cursor(row.created_at, "c", row.pk))
            for row in cash
        ]
    found.sort(key=lambda activity: activity.cursor.key(), reverse=descending)
    return found[:page_size]
