"""Reads of orders, and the reconciliation of balances against their ledgers and open
orders (it sees both apps, so it lives in the higher one). The two query shapes of the
original design keep their names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from core.money import ZERO, quantity_field, usd_field
from orders.models import Order


def get_orders_by_user(*, user: AbstractBaseUser) -> QuerySet[Order]:
    """All of a user's orders, newest first (index order_user_newest)."""
    return Order.objects.filter(user=user).order_by("-created_at")


def get_orders_by_user_and_asset(*, user: AbstractBaseUser, asset_id: str) -> QuerySet[Order]:
    """A user's orders for one asset, newest first (index order_user_asset_newest)."""
    return Order.objects.filter(user=user, asset_id=asset_id).order_by("-created_at")


def get_order_for_user(*, user: AbstractBaseUser, order_id) -> Order | None:
    """One order if ``user`` owns it (staff may see any); None otherwise, so the API answers 404."""
    try:
        order_id = uuid.UUID(str(order_id))
    except ValueError:
        return None
    queryset = Order.objects.select_related("asset", "user")
    if not user.is_staff:
        queryset = queryset.filter(user=user)
    return queryset.filter(pk=order_id).first()


# --- Reconciliation -----------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    username: str
    what: str
    recorded: Decimal
    explained: Decimal

    def __str__(self) -> str:
        return f"{self.username}: {self.what} is {self.recorded}, its ledger explains {self.explained}"


def _sum(queryset, field: str, output) -> Coalesce:
    return Coalesce(Subquery(queryset.values(field)[:1]), Value(ZERO), output_field=output)


def reconcile_ledger() -> list[Mismatch]:
    """Check SPEC section 3's invariants for every user, in two SQL queries: USD balance ==
    sum of the cash ledger, held == open BUY holds, asset quantity == signed sum of asset
    transactions, held quantity == open SELL quantities."""
    usd = usd_field()
    qty = quantity_field()

    cash_sum = (
        CashTransaction.objects.filter(user=OuterRef("user")).order_by().values("user").annotate(total=Sum("amount"))
    )
    holds = (
        Order.objects.filter(user=OuterRef("user"), status=Order.Status.PENDING, order_type=Order.Type.BUY)
        .order_by()
        .values("user")
        .annotate(total=Sum("held_amount"))
    )
    mismatches: list[Mismatch] = []
    usd_rows = UsdBalance.objects.select_related("user").annotate(
        ledger=_sum(cash_sum, "total", usd), open_holds=_sum(holds, "total", usd)
    )
    for row in usd_rows.filter(~Q(current_balance=F("ledger")) | ~Q(held=F("open_holds"))):
        if row.current_balance != row.ledger:
            mismatches.append(Mismatch(row.user.username, "USD balance", row.current_balance, row.ledger))
        if row.held != row.open_holds:
            mismatches.append(Mismatch(row.user.username, "USD held", row.held, row.open_holds))

    signed_quantity = Sum(
        "quantity", filter=Q(transaction_type__in=[AssetTransaction.Type.BUY, AssetTransaction.Type.ADJUSTMENT])
    ) - Coalesce(Sum("quantity", filter=Q(transaction_type=AssetTransaction.Type.SELL)), Value(ZERO), output_field=qty)
    asset_sum = (
        AssetTransaction.objects.filter(
            user=OuterRef("user"), asset=OuterRef("asset"), status=AssetTransaction.Status.COMPLETED
        )
        .order_by()
        .values("user", "asset")
        .annotate(total=Coalesce(signed_quantity, Value(ZERO), output_field=qty))
    )
    sell_holds = (
        Order.objects.filter(
            user=OuterRef("user"), asset=OuterRef("asset"), status=Order.Status.PENDING, order_type=Order.Type.SELL
        )
        .order_by()
        .values("user", "asset")
        .annotate(total=Sum("quantity"))
    )
    asset_rows = AssetBalance.objects.select_related("user").annotate(
        ledger=_sum(asset_sum, "total", qty), open_holds=_sum(sell_holds, "total", qty)
    )
    for row in asset_rows.filter(~Q(quantity=F("ledger")) | ~Q(held_quantity=F("open_holds"))):
        if row.quantity != row.ledger:
            mismatches.append(Mismatch(row.user.username, f"{row.asset_id} quantity", row.quantity, row.ledger))
        if row.held_quantity != row.open_holds:
            mismatches.append(Mismatch(row.user.username, f"{row.asset_id} held", row.held_quantity, row.open_holds))
    return mismatches
