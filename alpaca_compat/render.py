"""Our rows in Alpaca's JSON shapes (alpaca-py: alpaca/trading/models.py).

Plain functions building dicts: every field Alpaca sends, named and typed as Alpaca does
(numbers as strings in the trading API, timestamps RFC 3339 in UTC), with nothing computed
here that a selector did not already compute.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from alpaca_compat.errors import ALPACA_STATUS
from alpaca_compat.symbols import asset_uuid, pair_symbol, position_symbol
from assets.models import Asset
from balances.selectors import HoldingValue, Portfolio
from core.money import CENT, PRICE
from orders.models import PARTIALLY_FILLED, Order, kind_of

ACCOUNT_NAMESPACE = uuid.UUID("0c7d5a8e-2b1f-5e3a-9a6b-4d8c2f1e7b90")
CRYPTO = "crypto"
EXCHANGE = "CRYPTO"


def plain(value: Decimal | None) -> str | None:
    """A quantity or price without exponent or trailing zeros: "0.01", "63389.3", "0"."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def usd(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(CENT):.2f}"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def account_id(user) -> uuid.UUID:
    return uuid.uuid5(ACCOUNT_NAMESPACE, str(user.pk))


def account_number(user) -> str:
    return f"PA{user.pk:010d}"


# What every order shows the same: no extended hours, legs, trailing stops or tags here.
_ORDER_CONSTANTS = {
    "extended_hours": False,
    "legs": None,
    "trail_percent": None,
    "trail_price": None,
    "hwm": None,
    "subtag": None,
    "source": None,
}


def order_json(order: Order, *, just_placed: bool = False) -> dict:
    shown = order.shown_status
    status = ALPACA_STATUS.get(shown, shown.lower())
    if just_placed and order.status == Order.Status.PENDING:
        status = "accepted"  # accepted while being placed, new once it rests
    changed_at = iso(order.updated_at)
    kind = order.kind
    side = order.order_type.lower()
    return {
        "id": str(order.order_id),
        # Alpaca always has one; an order placed without one answers to its id.
        "client_order_id": order.client_order_id or str(order.order_id),
        "created_at": iso(order.created_at),
        "updated_at": changed_at,
        "submitted_at": iso(order.created_at),
        "filled_at": iso(order.filled_at),
        "expired_at": changed_at if order.status == Order.Status.EXPIRED else None,
        "expires_at": iso(order.expires_at),
        "canceled_at": changed_at if order.status == Order.Status.CANCELLED else None,
        "failed_at": changed_at if order.status == Order.Status.FAILED else None,
        "replaced_at": changed_at if order.status == Order.Status.REPLACED else None,
        "replaced_by": str(order.replaced_by_id) if order.replaced_by_id else None,
        "replaces": str(order.replaces_id) if order.replaces_id else None,
        "asset_id": str(asset_uuid(order.asset_id)),
        "symbol": pair_symbol(order.asset_id),
        "asset_class": CRYPTO,
        # Alpaca leaves qty empty on a notional order until it fills.
        "notional": usd(order.notional),
        "qty": None if order.notional is not None and order.status != Order.Status.COMPLETED else plain(order.quantity),
        "filled_qty": plain(order.filled_quantity),
        "filled_avg_price": plain(order.executed_price),
        "order_class": "",
        "order_type": kind,
        "type": kind,
        "side": side,
        "position_intent": "buy_to_open" if side == "buy" else "sell_to_close",
        "time_in_force": order.time_in_force,
        "limit_price": plain(order.order_price),
        "stop_price": plain(order.stop_price),
        "status": status,
        **_ORDER_CONSTANTS,
    }


def _snapshot_time(text: str | None) -> str | None:
    # A snapshot's times always carry six decimals; iso() writes none when they are zeros.
    if text is None:
        return None
    return text[:-8] + "Z" if text.endswith(".000000Z") else text


def order_json_of_snapshot(order: dict) -> dict:
    """``order_json`` of the order an event's snapshot holds (``orders.events.order_snapshot``),
    read from its JSON values: decimals already without trailing zeros, times in UTC. The
    streams render one for every order event, on the server's event loop, and building the
    order first would double the work (docs/PERFORMANCE.md, "Streams"). The two agree for
    every order: tests/alpaca_compat/test_render_snapshot.py."""
    status = order["status"]
    shown = PARTIALLY_FILLED if status == Order.Status.PENDING and order["filled_quantity"] != "0" else status
    changed_at = _snapshot_time(order["updated_at"])
    created_at = _snapshot_time(order["created_at"])
    kind = kind_of(order_price=order["order_price"], stop_price=order["stop_price"])
    side = order["order_type"].lower()
    order_id, notional = order["order_id"], order["notional"]
    replaced_by, replaces = order["replaced_by_id"], order["replaces_id"]
    return {
        "id": order_id,
        "client_order_id": order["client_order_id"] or order_id,
        "created_at": created_at,
        "updated_at": changed_at,
        "submitted_at": created_at,
        "filled_at": _snapshot_time(order["filled_at"]),
        "expired_at": changed_at if status == Order.Status.EXPIRED else None,
        "expires_at": _snapshot_time(order["expires_at"]),
        "canceled_at": changed_at if status == Order.Status.CANCELLED else None,
        "failed_at": changed_at if status == Order.Status.FAILED else None,
        "replaced_at": changed_at if status == Order.Status.REPLACED else None,
        "replaced_by": replaced_by,
        "replaces": replaces,
        "asset_id": str(asset_uuid(order["asset_id"])),
        "symbol": pair_symbol(order["asset_id"]),
        "asset_class": CRYPTO,
        "notional": None if notional is None else usd(Decimal(notional)),
        "qty": None if notional is not None and status != Order.Status.COMPLETED else order["quantity"],
        "filled_qty": order["filled_quantity"],
        "filled_avg_price": order["executed_price"],
        "order_class": "",
        "order_type": kind,
        "type": kind,
        "side": side,
        "position_intent": "buy_to_open" if side == "buy" else "sell_to_close",
        "time_in_force": order["time_in_force"],
        "limit_price": order["order_price"],
        "stop_price": order["stop_price"],
        "status": ALPACA_STATUS.get(shown, shown.lower()),
        **_ORDER_CONSTANTS,
    }


def asset_json(asset: Asset) -> dict:
    step = plain(asset.step)
    return {
        "id": str(asset_uuid(asset.asset_id)),
        "class": CRYPTO,
        "exchange": EXCHANGE,
        "symbol": pair_symbol(asset.asset_id),
        "name": f"{asset.name} / US Dollar",
        "status": "active" if asset.is_active else "inactive",
        "tradable": asset.is_active,
        "marginable": False,
        "maintenance_margin_requirement": 100,
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": True,
        "attributes": [],
        "min_order_size": step,
        "min_trade_increment": step,
        # What the engine accepts (prices to PRICE's decimals), not an exchange's tick.
        "price_increment": plain(PRICE.step),
    }


def _fraction(numerator: Decimal | None, denominator: Decimal) -> str | None:
    if numerator is None or not denominator:
        return None
    return plain((numerator / denominator).quantize(Decimal("0.0000000001")))


def position_json(value: HoldingValue) -> dict:
    holding = value.holding
    asset_id = holding.asset_id
    current = plain(value.current_price)
    return {
        "asset_id": str(asset_uuid(asset_id)),
        "symbol": position_symbol(asset_id),
        "exchange": EXCHANGE,
        "asset_class": CRYPTO,
        "asset_marginable": False,
        "qty": plain(holding.quantity),
        "qty_available": plain(holding.quantity - holding.held_quantity),
        "avg_entry_price": plain(holding.average_purchase_price),
        "side": "long",
        "market_value": usd(value.market_value),
        "cost_basis": usd(value.cost_basis),
        "unrealized_pl": usd(value.unrealized_pnl),
        "unrealized_plpc": _fraction(value.unrealized_pnl, value.cost_basis),
        # Intraday figures need yesterday's price, which nothing records yet: shown against
        # the entry price, and today's change as 0.
        "unrealized_intraday_pl": usd(value.unrealized_pnl),
        "unrealized_intraday_plpc": _fraction(value.unrealized_pnl, value.cost_basis),
        "current_price": current,
        "lastday_price": current,
        "change_today": "0" if current is not None else None,
    }


def account_json(user, portfolio: Portfolio) -> dict:
    balance = portfolio.usd_balance
    equity = usd(portfolio.total_portfolio_value)
    zero = "0"
    return {
        "id": str(account_id(user)),
        "account_number": account_number(user),
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "cash": usd(balance.current_balance),
        "buying_power": usd(balance.available),
        "regt_buying_power": usd(balance.available),
        "non_marginable_buying_power": usd(balance.available),
        "effective_buying_power": usd(balance.available),
        "options_buying_power": zero,
        "accrued_fees": zero,
        "pending_transfer_in": zero,
        "pending_transfer_out": zero,
        "portfolio_value": equity,
        "equity": equity,
        "last_equity": equity,
        "long_market_value": usd(portfolio.total_asset_value),
        "short_market_value": zero,
        "position_market_value": usd(portfolio.total_asset_value),
        "initial_margin": zero,
        "maintenance_margin": zero,
        "last_maintenance_margin": zero,
        "sma": zero,
        "multiplier": "1",
        "shorting_enabled": False,
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "created_at": iso(user.date_joined),
        "daytrade_count": 0,
        "balance_asof": iso(balance.updated_at)[:10] if balance.updated_at else None,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "crypto_tier": 1,
        "admin_configurations": {},
        "user_configurations": None,
    }
