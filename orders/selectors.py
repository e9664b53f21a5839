"""Reads of orders, and the reconciliation of balances against their ledgers and open
orders (it sees both apps, so it lives in the higher one). The two query shapes of the
original design keep their names."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from core.exceptions import InvalidRequest
from core.money import ZERO, quantity_field, usd_field
from orders.fill_model import FillParams, deployment_default
from orders.filters import OrderFilter
from orders.models import AccountFillModel, Order


def get_orders_by_user(*, user: AbstractBaseUser) -> QuerySet[Order]:
    """All of a user's orders, newest first (index order_user_newest)."""
    return Order.objects.filter(user=user).order_by("-created_at")


def get_orders_by_user_and_asset(*, user: AbstractBaseUser, asset_id: str) -> QuerySet[Order]:
    """A user's orders for one asset, newest first (index order_user_asset_newest)."""
    return Order.objects.filter(user=user, asset_id=asset_id).order_by("-created_at")


def get_orders(*, user: AbstractBaseUser, filters: Mapping[str, str]) -> QuerySet[Order]:
    """The list of a user's orders for both APIs: ``filters`` under ``OrderFilter``'s names
    (``asset_id``, ``status``, ``after``, ``direction``, ...), newest first unless
    ``direction=asc``. Raises InvalidRequest naming each filter that is not valid."""
    filterset = OrderFilter(filters, queryset=get_orders_by_user(user=user))
    if not filterset.is_valid():
        details = {name: list(messages) for name, messages in filterset.errors.items()}
        raise InvalidRequest("The request is not valid.", details=details)
    return filterset.qs


def pending_order_ids_crossed(*, asset_id: str, order_type: str, price) -> list:
    """Ids of resting orders a price acts on, oldest first: limits it crosses (BUY at or
    above it, SELL at or below; a stop-limit once triggered), and stops it reaches (BUY at or
    below it, SELL at or above) that have not triggered yet."""
    if order_type == Order.Type.BUY:
        crossed, reached = Q(order_price__gte=price), Q(stop_price__lte=price)
    else:
        crossed, reached = Q(order_price__lte=price), Q(stop_price__gte=price)
    armed = Q(stop_price__isnull=True) | Q(triggered_at__isnull=False)
    return list(
        Order.objects.filter(status=Order.Status.PENDING, asset_id=asset_id, order_type=order_type)
        .filter((crossed & armed) | (reached & Q(triggered_at__isnull=True)))
        .order_by("created_at")
        .values_list("pk", flat=True)
    )


class OrderAccess(StrEnum):
    """What a request does with one order; on another user's order each needs the admin's
    permission for it (docs/DESIGN.md, "Permissions")."""

    VIEW = "view"
    CANCEL = "cancel"
    REPLACE = "replace"


# Support holds view and cancel, Operations all three, a superuser every permission.
OTHER_USERS_ORDER_PERMISSIONS = {
    OrderAccess.VIEW: "orders.view_order",
    OrderAccess.CANCEL: "orders.cancel_order",
    OrderAccess.REPLACE: "orders.replace_order",
}


def may_act_on_other_users_orders(user: AbstractBaseUser, access: OrderAccess) -> bool:
    """The admin's rule: active staff holding the permission for ``access`` (through the
    Support or Operations group, or as a superuser). ``is_staff`` alone grants nothing."""
    return user.is_active and user.is_staff and user.has_perm(OTHER_USERS_ORDER_PERMISSIONS[access])


def get_order_for_user(*, user: AbstractBaseUser, order_id, access: OrderAccess = OrderAccess.VIEW) -> Order | None:
    """One order, its asset and user loaded (one query), if ``user`` owns it or may act on
    other users' orders for ``access``; None otherwise, so the API answers 404 and never says
    whether the order exists. The permission is read (Django's ``has_perm``: two queries, none
    for a superuser) only for an order that is someone else's."""
    try:
        order_id = uuid.UUID(str(order_id))
    except ValueError:
        return None
    order = Order.objects.select_related("asset", "user").filter(pk=order_id).first()
    if order is None or order.user_id == user.pk:
        return order
    return order if may_act_on_other_users_orders(user, access) else None


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
    """Check the ledgers' invariants (docs/DESIGN.md, "Ledgers") for every user, in two SQL queries: USD balance ==
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

    # SELL rows are positive quantities taken out; every other row carries its sign (a BUY adds,
    # an ADJUSTMENT goes either way, a RESET takes the holding out, a FEE pays a BUY's fee).
    signed_quantity = Sum(
        "quantity",
        filter=Q(
            transaction_type__in=[
                AssetTransaction.Type.BUY,
                AssetTransaction.Type.ADJUSTMENT,
                AssetTransaction.Type.RESET,
                AssetTransaction.Type.FEE,
            ]
        ),
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
        .annotate(total=Sum(F("quantity") - F("filled_quantity")))
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


# --- The fill model (docs/DESIGN.md, "Fill model") ------------------------------------------


def params_of(row: AccountFillModel | None) -> FillParams:
    """The parameters of an account's own model row, or the deployment's when it has none."""
    if row is None:
        return deployment_default()
    return FillParams(
        spread_bps=row.spread_bps,
        slippage=row.slippage,
        volume_limit=row.volume_limit,
        price_impact=row.price_impact,
        fill_participation=row.fill_participation,
        maker_fee_bps=row.maker_fee_bps,
        taker_fee_bps=row.taker_fee_bps,
        seed=row.seed,
    )


def get_account_fill_model(*, user_id: int) -> tuple[FillParams, AccountFillModel | None]:
    """The model an account's next orders fill under, with its own row (None: the deployment's). One query."""
    row = AccountFillModel.objects.filter(user_id=user_id).first()
    return params_of(row), row


# The accounts this process knows to have their own model, with that model and the version it
# read (the row's updated_at), so that their orders are priced under it without a query: the
# statement that fills an order checks the version in the same probe as its user lock, and
# writes nothing when the account's model is not the one it was priced under
# (docs/DESIGN.md, "Fill model"). Bounded; an account forgotten costs one refused statement.
_KNOWN_MODELS: dict[int, tuple[FillParams, datetime]] = {}
_KNOWN_MODELS_MAX = 100_000


def remember_fill_model(row: AccountFillModel) -> tuple[FillParams, datetime]:
    known = (params_of(row), row.updated_at)
    _KNOWN_MODELS.pop(row.user_id, None)
    if len(_KNOWN_MODELS) >= _KNOWN_MODELS_MAX:
        del _KNOWN_MODELS[next(iter(_KNOWN_MODELS))]
    _KNOWN_MODELS[row.user_id] = known
    return known


def read_fill_model(*, user_id: int) -> tuple[FillParams, datetime | None]:
    """The account's model and its version (None: the deployment's model, the account has none
    of its own), read now (one query) and remembered by this process."""
    row = AccountFillModel.objects.filter(user_id=user_id).first()
    if row is None:
        _KNOWN_MODELS.pop(user_id, None)
        return deployment_default(), None
    return remember_fill_model(row)


def fill_model_for_order(*, user_id: int) -> tuple[FillParams, datetime | None]:
    """The model to price an order of ``user_id`` under and its version, as this process
    knows it: no query. The fill's statement checks the version."""
    return _KNOWN_MODELS.get(user_id) or (deployment_default(), None)
