"""Reads of balances: holdings valued at market, the portfolio, and the reconciliation
of balances against their ledgers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import DecimalField, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from assets.prices import Quote, get_quotes
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from portfolio_project.money import CENT, ZERO, to_cents


def get_usd_balance(*, user: AbstractBaseUser) -> UsdBalance:
    return UsdBalance.objects.get(user=user)


# What valuing and showing a holding reads: the portfolio loads every holding at once, and
# parsing columns nobody shows (five timestamps a row) was a third of its time at 50 holdings.
HOLDING_COLUMNS = (
    "user_id",
    "quantity",
    "held_quantity",
    "average_purchase_price",
    "total_bought",
    "total_sold",
    "last_transaction_at",
    "asset__name",
    "asset__is_active",
    "asset__quantity_decimals",
    "asset__coingecko_id",
    "asset__reference_price",
)


def get_asset_balances(*, user: AbstractBaseUser) -> QuerySet[AssetBalance]:
    """Holdings with something in them, with their assets, in one query."""
    return (
        AssetBalance.objects.filter(user=user, quantity__gt=0)
        .select_related("asset")
        .only(*HOLDING_COLUMNS)
        .order_by("asset_id")
    )


def get_cash_transactions(*, user: AbstractBaseUser) -> QuerySet[CashTransaction]:
    return CashTransaction.objects.filter(user=user)


def get_asset_transactions(*, user: AbstractBaseUser) -> QuerySet[AssetTransaction]:
    return AssetTransaction.objects.filter(user=user)


# --- Valuation ----------------------------------------------------------------------


@dataclass(frozen=True)
class HoldingValue:
    holding: AssetBalance
    current_price: Decimal | None
    market_value: Decimal | None
    cost_basis: Decimal
    unrealized_pnl: Decimal | None
    unrealized_pnl_percent: Decimal | None
    price_source: str | None
    price_as_of: datetime | None
    price_stale: bool


def value_holding(holding: AssetBalance, quote: Quote | None) -> HoldingValue:
    cost_basis = to_cents(holding.quantity * holding.average_purchase_price)
    if quote is None:
        return HoldingValue(holding, None, None, cost_basis, None, None, None, None, True)
    market_value = to_cents(holding.quantity * quote.price)
    pnl = market_value - cost_basis
    percent = (pnl / cost_basis * 100).quantize(CENT) if cost_basis else None
    return HoldingValue(
        holding, quote.price, market_value, cost_basis, pnl, percent, quote.source, quote.as_of, quote.stale
    )


def value_holdings(holdings: list[AssetBalance]) -> list[HoldingValue]:
    """Value holdings with one price lookup for all of them."""
    quotes = get_quotes([h.asset for h in holdings])
    return [value_holding(h, quotes.get(h.asset_id)) for h in holdings]


@dataclass(frozen=True)
class Portfolio:
    username: str
    usd_balance: UsdBalance
    asset_balances: list[HoldingValue]
    total_asset_value: Decimal
    total_cost_basis: Decimal
    total_unrealized_pnl: Decimal
    total_portfolio_value: Decimal
    asset_count: int
    price_source: str | None
    prices_as_of: datetime | None
    price_stale: bool


def calculate_portfolio_value(*, user: AbstractBaseUser) -> Portfolio:
    """The user's cash and holdings at current prices: two SQL queries and one price
    lookup however many assets are held. A holding with no price at all counts at zero
    market value and flags the portfolio ``price_stale``."""
    usd = get_usd_balance(user=user)
    valued = value_holdings(list(get_asset_balances(user=user)))
    total_asset_value = sum((v.market_value or ZERO for v in valued), ZERO)
    total_cost_basis = sum((v.cost_basis for v in valued), ZERO)
    sources = sorted({v.price_source for v in valued if v.price_source})
    as_ofs = [v.price_as_of for v in valued if v.price_as_of]
    return Portfolio(
        username=user.get_username(),
        usd_balance=usd,
        asset_balances=valued,
        total_asset_value=total_asset_value,
        total_cost_basis=total_cost_basis,
        total_unrealized_pnl=total_asset_value - total_cost_basis,
        total_portfolio_value=usd.current_balance + total_asset_value,
        asset_count=len(valued),
        price_source=",".join(sources) or None,
        prices_as_of=min(as_ofs) if as_ofs else None,
        price_stale=any(v.price_stale for v in valued),
    )


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
    # Resolved by name: balances must not import the orders app (imports run orders -> balances).
    order_model = apps.get_model("orders", "Order")
    usd_field = DecimalField(max_digits=20, decimal_places=2)
    qty_field = DecimalField(max_digits=38, decimal_places=18)

    cash_sum = (
        CashTransaction.objects.filter(user=OuterRef("user")).order_by().values("user").annotate(total=Sum("amount"))
    )
    holds = (
        order_model.objects.filter(user=OuterRef("user"), status="PENDING", order_type="BUY")
        .order_by()
        .values("user")
        .annotate(total=Sum("held_amount"))
    )
    mismatches: list[Mismatch] = []
    usd_rows = UsdBalance.objects.select_related("user").annotate(
        ledger=_sum(cash_sum, "total", usd_field), open_holds=_sum(holds, "total", usd_field)
    )
    for row in usd_rows.filter(~Q(current_balance=F("ledger")) | ~Q(held=F("open_holds"))):
        if row.current_balance != row.ledger:
            mismatches.append(Mismatch(row.user.username, "USD balance", row.current_balance, row.ledger))
        if row.held != row.open_holds:
            mismatches.append(Mismatch(row.user.username, "USD held", row.held, row.open_holds))

    signed_quantity = Sum("quantity", filter=Q(transaction_type__in=["BUY", "ADJUSTMENT"])) - Coalesce(
        Sum("quantity", filter=Q(transaction_type="SELL")), Value(ZERO), output_field=qty_field
    )
    asset_sum = (
        AssetTransaction.objects.filter(user=OuterRef("user"), asset=OuterRef("asset"), status="COMPLETED")
        .order_by()
        .values("user", "asset")
        .annotate(total=Coalesce(signed_quantity, Value(ZERO), output_field=qty_field))
    )
    sell_holds = (
        order_model.objects.filter(user=OuterRef("user"), asset=OuterRef("asset"), status="PENDING", order_type="SELL")
        .order_by()
        .values("user", "asset")
        .annotate(total=Sum("quantity"))
    )
    asset_rows = AssetBalance.objects.select_related("user").annotate(
        ledger=_sum(asset_sum, "total", qty_field), open_holds=_sum(sell_holds, "total", qty_field)
    )
    for row in asset_rows.filter(~Q(quantity=F("ledger")) | ~Q(held_quantity=F("open_holds"))):
        if row.quantity != row.ledger:
            mismatches.append(Mismatch(row.user.username, f"{row.asset_id} quantity", row.quantity, row.ledger))
        if row.held_quantity != row.open_holds:
            mismatches.append(Mismatch(row.user.username, f"{row.asset_id} held", row.held_quantity, row.open_holds))
    return mismatches
