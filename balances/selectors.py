"""Reads of balances: holdings valued at market and the portfolio. (The reconciliation of
balances against their ledgers and open orders reads orders too: ``orders.selectors``.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from assets.prices import Quote, get_quotes
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from core.money import CENT, ZERO, to_cents
from core.replicas import read_connection


def get_usd_balance(*, user: AbstractBaseUser) -> UsdBalance:
    return UsdBalance.objects.get(user=user)


@dataclass(frozen=True, slots=True)
class HeldAsset:
    """The columns of ``Asset`` that showing and pricing a holding read (a ``PricedAsset``
    for the price providers), named like the model's fields: a row, not a model."""

    asset_id: str
    name: str
    is_active: bool
    quantity_decimals: int
    coingecko_id: str
    reference_price: Decimal
    daily_volatility: Decimal


@dataclass(frozen=True, slots=True)
class Holding:
    """The columns of ``AssetBalance`` a holding shows, named like the model's fields, with its
    asset. Rows rather than model instances because building two models a row is what made
    this read slow: 50 holdings take 0.25 ms as these rows and 1.04 ms through
    ``Model.from_db`` (docs/PERFORMANCE.md)."""

    asset: HeldAsset
    quantity: Decimal
    held_quantity: Decimal
    average_purchase_price: Decimal
    total_bought: Decimal
    total_sold: Decimal
    last_transaction_at: datetime | None

    @property
    def asset_id(self) -> str:
        return self.asset.asset_id

    @property
    def available_quantity(self) -> Decimal:
        return self.quantity - self.held_quantity


# One statement, not the ORM (see Holding). The select list is the rows' own field names, so
# the rows and the query cannot drift apart; tests check each name is a column of its model.
_ASSET_COLUMNS = [f"a.{name}" for name in HeldAsset.__dataclass_fields__]
_HOLDING_COLUMNS = [f"b.{name}" for name in Holding.__dataclass_fields__ if name != "asset"]
_HOLDINGS_SQL = f"""
    SELECT {", ".join(_ASSET_COLUMNS + _HOLDING_COLUMNS)}
    FROM balances_assetbalance b JOIN assets_asset a ON a.asset_id = b.asset_id
    WHERE b.user_id = %s AND b.quantity > 0 {{asset_filter}}
    ORDER BY b.asset_id
"""


def get_holdings(*, user: AbstractBaseUser, asset_id: str | None = None) -> list[Holding]:
    """The user's holdings with something in them (or the one of ``asset_id``), ordered by
    asset, in one query."""
    params: list[object] = [user.pk]
    asset_filter = ""
    if asset_id is not None:
        asset_filter, params = "AND b.asset_id = %s", [user.pk, asset_id]
    # Prepared: read on every portfolio, account and position request.
    with read_connection(AssetBalance).prepared_cursor() as cursor:
        cursor.execute(_HOLDINGS_SQL.format(asset_filter=asset_filter), params)
        rows = cursor.fetchall()
    split = len(_ASSET_COLUMNS)
    return [Holding(HeldAsset(*row[:split]), *row[split:]) for row in rows]


def get_cash_transactions(*, user: AbstractBaseUser) -> QuerySet[CashTransaction]:
    return CashTransaction.objects.filter(user=user)


def get_asset_transactions(*, user: AbstractBaseUser) -> QuerySet[AssetTransaction]:
    return AssetTransaction.objects.filter(user=user)


# --- Valuation ----------------------------------------------------------------------


@dataclass(frozen=True)
class HoldingValue:
    holding: Holding | AssetBalance
    current_price: Decimal | None
    market_value: Decimal | None
    cost_basis: Decimal
    unrealized_pnl: Decimal | None
    unrealized_pnl_percent: Decimal | None
    price_source: str | None
    price_as_of: datetime | None
    price_stale: bool


def value_holding(holding: Holding | AssetBalance, quote: Quote | None) -> HoldingValue:
    cost_basis = to_cents(holding.quantity * holding.average_purchase_price)
    if quote is None:
        return HoldingValue(holding, None, None, cost_basis, None, None, None, None, True)
    market_value = to_cents(holding.quantity * quote.price)
    pnl = market_value - cost_basis
    percent = (pnl / cost_basis * 100).quantize(CENT) if cost_basis else None
    if percent is not None and percent.is_zero():
        percent = percent.copy_abs()  # a loss under 0.005 % reads "0.00", not "-0.00"
    return HoldingValue(
        holding, quote.price, market_value, cost_basis, pnl, percent, quote.source, quote.as_of, quote.stale
    )


def value_holdings(holdings: list[Holding]) -> list[HoldingValue]:
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
    valued = value_holdings(get_holdings(user=user))
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
