"""Settling fills: every fill passes through this module, as ONE SQL statement
(docs/DESIGN.md, "Settlement").

A fill writes five tables: the order, the user's USD balance, the holding, and one row in
each ledger. Four statements write them, built here from one set of column builders (the
order, cash and asset rows of ``core.sql.insert_sql``, the holding's buy and sell steps), so
a new column or ledger rule is added in one place:

- ``MARKET_BUY_SQL``: a BUY filled on arrival, its own transaction; it takes the user lock by
  debiting (the UPDATE's WHERE is the funds check, evaluated on the locked row).
- ``ARRIVAL_SELL_SQL``: a SELL filled on arrival, its own transaction; it takes the user lock
  first (whose WHERE is the balance cap), then the holding (whose WHERE is the unheld
  quantity), then credits.
- ``RESTING_BUY_SQL``, ``RESTING_SELL_SQL``: a stored PENDING order (a resting order, a
  replacement filled at once, a stop that triggered), under the user lock the caller holds;
  the order leaves PENDING by compare-and-swap inside the statement, so a lost race writes
  nothing.

Every check comes before the first write: the data-modifying steps of a statement all run,
so each step selects FROM the one before it and has no row to act on when a check failed.
The fill's quantity, price and amount are parameters, not read from the order. Each
statement returns the fill it wrote (``Fill``, from its RETURNING: no query more), the seam
of the domain event a fill announces. Orders owns this module because a fill is an
order's; balances keeps the cash movements that are not fills (deposits, withdrawals,
adjustments). ``scripts/bench`` builds its SQL with the same functions.
"""

from __future__ import annotations

import dataclasses
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection, transaction

from assets.prices import Quote
from assets.selectors import get_asset
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import check_balance_limit, require_unheld
from core.exceptions import InsufficientAsset, InsufficientFunds, OrderNoLongerPending
from core.money import CENT, PRICE, USD, ZERO, to_cents_down, to_cents_up, value_of
from core.sql import insert_sql
from orders.events import AS_ACCEPTED, Event, order_events_insert_sql
from orders.fill_model import PROFILES, SLIPPAGE_NONE, FillParams
from orders.models import Order
from orders.selectors import read_fill_model

IDEAL_PARAMS = PROFILES["ideal"]

# --- Raw INSERTs, from the models' columns --------------------------------------------------


def order_insert_sql(*, source: str = "", **values: str) -> str:
    """An order row; columns a fill or a resting order leaves empty default to it."""
    defaults = {
        "order_price": "NULL",
        "total_amount": "NULL",
        "executed_price": "NULL",
        "filled_quantity": "0",
        "held_amount": "0",
        "failure_reason": "''",
        "failure_code": "''",
        "failure_details": "'{}'",
        "client_order_id": "NULL",
        "expires_at": "NULL",
        "filled_at": "NULL",
        "stop_price": "NULL",
        "triggered_at": "NULL",
        "notional": "NULL",
        "time_in_force": f"'{Order.TimeInForce.GTC}'",
        "replaces_id": "NULL",
        "replaced_by_id": "NULL",
        "placed_via": f"'{Order.PlacedVia.API}'",
        "api_key_id": "NULL",
        "actor_id": "NULL",
    }
    return insert_sql(Order, source=source, **{**defaults, **values})


def cash_row_insert_sql(*, source: str = "", **values: str) -> str:
    """A USD ledger row of a fill or a bulk load: no client reference, note or actor by default."""
    defaults = {"order_id": "NULL", "client_reference": "NULL", "note": "''", "actor_id": "NULL"}
    return insert_sql(CashTransaction, source=source, **{**defaults, **values})


def asset_row_insert_sql(*, source: str = "", **values: str) -> str:
    """An asset ledger row of a fill or a bulk load, COMPLETED."""
    defaults = {
        "realized_pnl": "NULL",
        "order_id": "NULL",
        "status": f"'{AssetTransaction.Status.COMPLETED}'",
        "note": "''",
        "client_reference": "NULL",
        "actor_id": "NULL",
    }
    return insert_sql(AssetTransaction, source=source, **{**defaults, **values})


def add_bought_quantity_sql(*, source: str = "", cost: str, **values: str) -> str:
    """Add a bought quantity to a holding for the USD actually paid (``cost``, the cent of
    rounding included): insert the holding at cost / quantity, or move its average purchase
    price to (quantity x average + cost) / (quantity + bought), so that the cost basis of
    what is held is what was paid for it. ``values`` gives user_id, asset_id, quantity,
    last_transaction_at, created_at, updated_at. PostgreSQL's numeric arithmetic is exact;
    round() rounds half away from zero."""
    quantity = values["quantity"]
    values = {
        "held_quantity": "0",
        # The cast gives the division the price's decimals whatever the literals' own scales.
        "average_purchase_price": f"round(({cost})::{PRICE.sql_type} / ({quantity}), {PRICE.decimals})",
        "total_bought": quantity,
        "total_sold": "0",
        **values,
    }
    return f"""{insert_sql(AssetBalance, alias="b", source=source, **values)}
    ON CONFLICT (user_id, asset_id) DO UPDATE SET
        average_purchase_price = round(
            (b.quantity * b.average_purchase_price + ({cost})) / (b.quantity + EXCLUDED.quantity), {PRICE.decimals}
        ),
        quantity = b.quantity + EXCLUDED.quantity,
        total_bought = b.total_bought + EXCLUDED.quantity,
        last_transaction_at = EXCLUDED.last_transaction_at,
        updated_at = EXCLUDED.updated_at"""


def cents_half_even_sql(value: str) -> str:
    """``value`` rounded half-even to the cent, as ``core.money.to_cents`` rounds a reported
    figure (PostgreSQL's round() rounds half away from zero: 9.985 would give 9.99, not 9.98)."""
    scaled = f"(({value}) * 100)"
    return (
        f"CASE WHEN abs(mod({scaled}, 1)) = 0.5 AND mod(trunc({scaled}), 2) = 0 "
        f"THEN trunc({scaled}) / 100 ELSE round({value}, {USD.decimals}) END"
    )


# --- The steps the four statements are built from ---------------------------------------

_BOUGHT = {
    "user_id": "%(user_id)s",
    "asset_id": "%(asset_id)s",
    "quantity": "%(quantity)s",
    "cost": "%(cost)s",
    "last_transaction_at": "%(at)s",
    "created_at": "%(at)s",
    "updated_at": "%(at)s",
}

# What the order and both ledger rows of a fill share.
_OF_THE_FILL = {"user_id": "%(user_id)s", "created_at": "%(at)s"}

# The user lock of a statement that does not begin by debiting: it locks the USD balance
# (FOR NO KEY UPDATE: it does not block inserts referencing it) and carries the balance's
# check, evaluated on the newest version of the locked row.
_ACCOUNT_SQL = """SELECT user_id FROM balances_usdbalance
    WHERE user_id = %(user_id)s AND {check}
    FOR NO KEY UPDATE"""
_FUNDS_CHECK = "current_balance - held + %(released)s >= %(cost)s"
_CAP_CHECK = "current_balance + %(proceeds)s <= %(max_balance)s"
# A fill on arrival is priced before any query under the fill model this process knows the
# account to have (``orders.selectors.fill_model_for_order``: the deployment's unless it read
# the account's own), of version ``model_version`` (the own model's updated_at; NULL: none). The
# statement checks it in the same probe as the user lock and writes nothing when the account's
# model is another (docs/DESIGN.md, "Fill model"): in the steady state, no query more.
_MODEL_CHECK = (
    "(SELECT m.updated_at FROM orders_accountfillmodel m WHERE m.user_id = %(user_id)s)"
    " IS NOT DISTINCT FROM %(model_version)s::timestamptz"
)
# The cap of a sale that pays a fee: the USD credited is the proceeds less the fee.
_NET_CAP_CHECK = "current_balance + %(proceeds)s - %(fee)s <= %(max_balance)s"


def _position_sql(*, releasing: bool) -> str:
    """The holding of a sale, locked, with the average purchase price the realized P&L is
    measured against (the sale's UPDATE resets it when the holding empties). Its WHERE is the
    unheld quantity, counting what a resting SELL's fill releases of its own hold."""
    released = " + %(released)s" if releasing else ""
    return f"""SELECT b.id, b.average_purchase_price FROM balances_assetbalance b JOIN account USING (user_id)
    WHERE b.user_id = %(user_id)s AND b.asset_id = %(asset_id)s
      AND b.quantity - b.held_quantity{released} >= %(quantity)s
    FOR NO KEY UPDATE OF b"""


def _sold_sql(*, source: str, releasing: bool) -> str:
    released = "\n        held_quantity = b.held_quantity - %(released)s," if releasing else ""
    return f"""UPDATE balances_assetbalance AS b SET
        quantity = b.quantity - %(quantity)s,{released}
        average_purchase_price = CASE WHEN b.quantity = %(quantity)s THEN 0 ELSE b.average_purchase_price END,
        total_sold = b.total_sold + %(quantity)s,
        last_transaction_at = %(at)s,
        updated_at = %(at)s
    {source} WHERE b.id = position.id
    RETURNING b.quantity, position.average_purchase_price"""


_CREDIT_SQL = """UPDATE balances_usdbalance SET current_balance = current_balance + %(proceeds)s, updated_at = %(at)s
    {source} WHERE balances_usdbalance.user_id = %(user_id)s
    RETURNING current_balance"""

# PENDING -> COMPLETED by compare-and-swap: the whole order at this fill (the quantity and,
# for a BUY, the hold are those the caller read under the user lock).
_FILLED_SQL = f"""UPDATE orders_order SET
        status = '{Order.Status.COMPLETED}', executed_price = %(price)s, total_amount = %(amount)s,
        filled_quantity = quantity, held_amount = 0, triggered_at = %(triggered_at)s, filled_at = %(at)s,
        updated_at = %(at)s
    {{source}} WHERE order_id = %(order_id)s AND status = '{Order.Status.PENDING}'
      AND quantity = %(quantity)s AND held_amount = %(held_amount)s AND filled_quantity = 0
    RETURNING orders_order.*"""

# A stored PENDING order's fill of ``quantity`` (all or part of what is left) by
# compare-and-swap on what the caller read under the user lock (nothing filled since, the same
# hold): what has filled grows, the price becomes the fills' average, the hold becomes
# ``held_after``; COMPLETED once all of it filled (docs/DESIGN.md, "Fill model").
_PART_FILLED_SQL = f"""UPDATE orders_order SET
        filled_quantity = filled_quantity + %(quantity)s,
        executed_price = round(
            (coalesce(executed_price, 0) * filled_quantity + %(price)s * %(quantity)s)
                / (filled_quantity + %(quantity)s),
            {PRICE.decimals}
        ),
        total_amount = coalesce(total_amount, 0) + %(amount)s,
        held_amount = %(held_after)s,
        status = CASE WHEN filled_quantity + %(quantity)s = quantity
            THEN '{Order.Status.COMPLETED}' ELSE status END,
        filled_at = CASE WHEN filled_quantity + %(quantity)s = quantity THEN %(at)s::timestamptz END,
        triggered_at = %(triggered_at)s, updated_at = %(at)s
    {{source}} WHERE order_id = %(order_id)s AND status = '{Order.Status.PENDING}'
      AND filled_quantity = %(filled_before)s AND held_amount = %(held_amount)s
      AND filled_quantity + %(quantity)s <= quantity
    RETURNING orders_order.*"""

_PLACED = {
    **_OF_THE_FILL,
    "asset_id": "%(asset_id)s",
    "quantity": "%(quantity)s",
    "order_id": "%(order_id)s",
    "order_price": "%(order_price)s",
    # A stop the price triggered on arrival is stored as the stop it was answered as.
    "stop_price": "%(stop_price)s",
    "triggered_at": "%(triggered_at)s",
    "executed_price": "%(price)s",
    "filled_quantity": "%(quantity)s",
    "status": f"'{Order.Status.COMPLETED}'",
    "client_order_id": "%(client_order_id)s",
    "expires_at": "%(expires_at)s",
    "notional": "%(notional)s",
    "time_in_force": "%(time_in_force)s",
    "updated_at": "%(at)s",
    "filled_at": "%(at)s",
    "placed_via": "%(placed_via)s",
    "api_key_id": "%(api_key_id)s",
}


def _cash_sql(*, side: str, source: str, order: str, balance: str, fee: bool = False) -> str:
    amount = "%(debit)s" if side == Order.Type.BUY else "%(proceeds)s"
    # A sale's fee row comes after its SELL row: the SELL row's balance is before the fee.
    after = f"{balance}.current_balance + %(fee)s" if fee and side == Order.Type.SELL else f"{balance}.current_balance"
    return cash_row_insert_sql(
        source=source,
        **_OF_THE_FILL,
        transaction_type=f"'{side}'",
        amount=amount,
        balance_after=after,
        order_id=f"{order}.order_id",
    )


def _fee_sql(*, side: str, order: str, balance: str) -> str:
    """A fill's fee as a ledger row of its own, in what the fill gave the account: a BUY's in
    the asset (a FEE row of the asset ledger, negative, at the fill's price), a SELL's in USD
    (a FEE row of the cash ledger, negative). None when the fee is 0. Each selects from the
    row it follows, so that it is written after it (its id, its place in the ledger)."""
    if side == Order.Type.BUY:
        return asset_row_insert_sql(
            source=f"FROM {order}, asset_row WHERE %(fee_quantity)s > 0",
            **_OF_THE_FILL,
            asset_id="%(asset_id)s",
            quantity="-%(fee_quantity)s",
            transaction_type=f"'{AssetTransaction.Type.FEE}'",
            price_per_unit="%(price)s",
            total_amount="%(fee_value)s",
            order_id=f"{order}.order_id",
            price_source="%(price_source)s",
        )
    return cash_row_insert_sql(
        source=f"FROM {balance}, {order}, cash WHERE %(fee)s > 0",
        **_OF_THE_FILL,
        transaction_type=f"'{CashTransaction.Type.FEE}'",
        amount="-%(fee)s",
        balance_after=f"{balance}.current_balance",
        order_id=f"{order}.order_id",
    )


# The fill, from the asset ledger row and the holding after it, in Fill's field order.
_FILL_RETURNING = (
    "RETURNING id, order_id, user_id, asset_id, transaction_type, quantity, price_per_unit, total_amount, created_at"
)
_FILL_SELECT = (
    "SELECT asset_row.id, asset_row.order_id, asset_row.user_id, asset_row.asset_id, asset_row.transaction_type, "
    "asset_row.quantity, asset_row.price_per_unit, asset_row.total_amount, holding.quantity, asset_row.created_at "
    "FROM asset_row, holding"
)


def _asset_row_sql(*, side: str, source: str, order: str, fee: bool = False) -> str:
    sold = side == Order.Type.SELL
    amount = "%(proceeds)s" if sold else "%(cost)s"
    # Realized P&L is net of the sale's fee (docs/DESIGN.md, "Fill model").
    proceeds = "%(proceeds)s - %(fee)s" if fee else "%(proceeds)s"
    return asset_row_insert_sql(
        source=source,
        **_OF_THE_FILL,
        asset_id="%(asset_id)s",
        quantity="%(quantity)s",
        transaction_type=f"'{side}'",
        price_per_unit="%(price)s",
        total_amount=amount,
        # Realized P&L against the average purchase price the sale leaves (or resets).
        realized_pnl=(
            cents_half_even_sql(f"{proceeds} - %(quantity)s * holding.average_purchase_price") if sold else "NULL"
        ),
        order_id=f"{order}.order_id",
        price_source="%(price_source)s",
    )


def _events_sql(*, order: str, arrival: bool, partial: bool = False) -> str:
    """The fill's domain events (docs/DESIGN.md, "Domain events"), written by the statement
    itself so that they exist exactly when it commits: ``fill``, after ``new`` for an order
    filled on arrival (as accepted, before the fill), as for an order that rested first. A
    ``partial`` statement's fill is ``partly_filled`` unless it completed the order."""
    fill = {
        "event": Event.FILL,
        "row": order,
        "at": "%(at)s",
        "fill_quantity": "%(quantity)s",
        "fill_price": "%(price)s",
        "position_quantity": "holding.quantity",
        "execution_id": "asset_row.id",
    }
    if partial:
        completed = f"{order}.status = '{Order.Status.COMPLETED}'"
        fill["event_sql"] = f"CASE WHEN {completed} THEN '{Event.FILL}' ELSE '{Event.PARTLY_FILLED}' END"
    events = [fill]
    if arrival:
        events.insert(0, {"event": Event.NEW, "row": order, "at": "%(at)s", "overrides": AS_ACCEPTED})
    return order_events_insert_sql(source=f"FROM {order}, holding, asset_row", events=events)


def _fill_steps(
    *, side: str, order: str, balance: str, order_source: str, arrival: bool, fee: bool = False, partial: bool = False
) -> str:
    """The two ledger rows (and with ``fee`` the fee's, after them), the domain events, and the
    fill the statement returns. ``order`` is the statement's relation of the order's row,
    every column (``RETURNING *``)."""
    fee_step = (
        f"""), fee_row AS (
    {_fee_sql(side=side, order=order, balance=balance)}
"""
        if fee
        else ""
    )
    returning = "\n    RETURNING id" if fee else ""
    return f"""cash AS (
    {_cash_sql(side=side, source=f"FROM {balance}, {order}", order=order, balance=balance, fee=fee)}{returning}
), asset_row AS (
    {_asset_row_sql(side=side, source=order_source, order=order, fee=fee)}
    {_FILL_RETURNING}
{fee_step}), events AS (
    {_events_sql(order=order, arrival=arrival, partial=partial)}
)
{_FILL_SELECT}
"""


# A market BUY (or a marketable limit) as ONE SQL statement, run as its own transaction: take
# the user lock by debiting USD (the UPDATE's WHERE is the funds check, evaluated on the
# locked, newest row version), then add to the holding, then insert the order and both ledger
# rows. Each step selects FROM the one before, so PostgreSQL runs them in the lock order
# (docs/DESIGN.md, "Lock order"); when the debit finds too little money, no later step has a
# row to work on and the statement changes nothing. One round trip and one commit.
_PLACED_SQL = order_insert_sql(
    source="FROM holding", **_PLACED, order_type=f"'{Order.Type.BUY}'", total_amount="%(cost)s"
)


def _market_buy_sql(*, fee: bool) -> str:
    # With a fee the holding gains what is left after it (``net_quantity``) for the whole cost:
    # the cost basis includes the fee.
    bought = {**_BOUGHT, "quantity": "%(net_quantity)s"} if fee else _BOUGHT
    steps = _fill_steps(
        side=Order.Type.BUY, order="placed", balance="debit", order_source="FROM placed", arrival=True, fee=fee
    )
    return f"""
WITH debit AS (
    UPDATE balances_usdbalance SET current_balance = current_balance - %(cost)s, updated_at = %(at)s
    WHERE user_id = %(user_id)s AND current_balance - held >= %(cost)s AND {_MODEL_CHECK}
    RETURNING current_balance
), holding AS (
    {add_bought_quantity_sql(source="FROM debit", **bought)}
    RETURNING b.quantity
), placed AS (
    {_PLACED_SQL}
    RETURNING *
), {steps}"""


MARKET_BUY_SQL = _market_buy_sql(fee=False)
# The same under a fill model with fees: the fee's ledger row, the holding net of it.
MARKET_BUY_FEE_SQL = _market_buy_sql(fee=True)


def _sale_sql(*, resting: bool, fee: bool = False, partial: bool = False) -> str:
    """A SELL's fill: the user lock (its WHERE the balance cap and, on arrival, the fill
    model's check), the holding (its WHERE the unheld quantity, counting what a resting SELL
    releases of its own hold), for a stored order its compare-and-swap, then the writes; an
    order filled on arrival is inserted. With ``fee``, the account is credited the proceeds
    less the fee, written as a FEE row after the SELL row."""
    order = "filled" if resting else "placed"
    steps = _fill_steps(
        side=Order.Type.SELL,
        order=order,
        balance="credit",
        order_source=f"FROM {order}, holding",
        arrival=not resting,
        fee=fee,
        partial=partial,
    )
    check = _NET_CAP_CHECK if fee else _CAP_CHECK
    if not resting:
        check = f"{check} AND {_MODEL_CHECK}"
    credit = _CREDIT_SQL.replace("%(proceeds)s", "%(proceeds)s - %(fee)s") if fee else _CREDIT_SQL
    swap = (
        f"""), filled AS (
    {(_PART_FILLED_SQL if partial else _FILLED_SQL).format(source="FROM position")}
"""
        if resting
        else ""
    )
    place = (
        ""
        if resting
        else f"""), placed AS (
    {order_insert_sql(source="FROM credit", **_PLACED, order_type=f"'{Order.Type.SELL}'", total_amount="%(proceeds)s")}
    RETURNING *
"""
    )
    return f"""
WITH account AS (
    {_ACCOUNT_SQL.format(check=check)}
), position AS (
    {_position_sql(releasing=resting)}
{swap}), holding AS (
    {_sold_sql(source="FROM position, filled" if resting else "FROM position", releasing=resting)}
), credit AS (
    {credit.format(source="FROM holding")}
{place}), {steps}"""


# A SELL filled on arrival, as ONE statement run as its own transaction; and with a fee.
ARRIVAL_SELL_SQL = _sale_sql(resting=False)
ARRIVAL_SELL_FEE_SQL = _sale_sql(resting=False, fee=True)


def _resting_buy_sql(*, partial: bool) -> str:
    """A stored PENDING BUY filled under the user lock the caller holds: the funds (counting
    the hold the fill releases), then the order's compare-and-swap, which every write follows.
    ``partial``: under a fill model (docs/DESIGN.md, "Fill model"), all or part of what is
    left, at the model's price, with its maker fee's row (none when it is 0)."""
    filled = _PART_FILLED_SQL if partial else _FILLED_SQL
    bought = {**_BOUGHT, "quantity": "%(net_quantity)s"} if partial else _BOUGHT
    steps = _fill_steps(
        side=Order.Type.BUY,
        order="filled",
        balance="debit",
        order_source="FROM filled",
        arrival=False,
        **({"fee": True, "partial": True} if partial else {}),
    )
    return f"""
WITH account AS (
    {_ACCOUNT_SQL.format(check=_FUNDS_CHECK)}
), filled AS (
    {filled.format(source="FROM account")}
), debit AS (
    UPDATE balances_usdbalance SET
        current_balance = current_balance - %(cost)s, held = held - %(released)s, updated_at = %(at)s
    FROM filled WHERE balances_usdbalance.user_id = %(user_id)s
    RETURNING current_balance
), holding AS (
    {add_bought_quantity_sql(source="FROM debit", **bought)}
    RETURNING b.quantity
), {steps}"""


RESTING_BUY_SQL = _resting_buy_sql(partial=False)

# A stored PENDING SELL filled under the user lock the caller holds.
RESTING_SELL_SQL = _sale_sql(resting=True)

# A stored PENDING order's fill under a fill model: all or part of what is left.
RESTING_BUY_PART_SQL = _resting_buy_sql(partial=True)
RESTING_SELL_PART_SQL = _sale_sql(resting=True, fee=True, partial=True)

# --- The fill, as a value ------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    """One fill as its statement wrote it: what a fill announces (docs/DESIGN.md, "Domain
    events"). Taken from the statement's RETURNING."""

    fill_id: int  # the asset ledger row's id
    order_id: uuid.UUID
    user_id: int
    asset_id: str
    side: str  # Order.Type
    quantity: Decimal
    price: Decimal
    amount: Decimal  # USD: the cost of a BUY, the proceeds of a SELL
    position_quantity: Decimal  # the holding after the fill
    filled_at: datetime


def _run(sql: str, params: dict) -> Fill | None:
    # Prepared once per connection: planning these statements costs PostgreSQL more than
    # running them (core/postgresql/base.py).
    with connection.prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return Fill(*row) if row is not None else None


@contextmanager
def durable_statement():
    """The transaction of one SQL statement, under ``atomic(durable=True)``'s rule. In
    autocommit mode the statement is its own transaction, so no BEGIN and COMMIT round trips
    (they would double the market buy's); inside a caller's atomic block it refuses, as
    durable=True does, except in a test case's block, where it is a savepoint that keeps a
    unique violation from poisoning the test's transaction."""
    with transaction.atomic(durable=True) if connection.in_atomic_block else nullcontext():
        yield


# --- Orders filled on arrival (each statement its own transaction) ------------------------


def _arrival_params(order: Order, *, quote: Quote, now: datetime, model_version: datetime | None = None) -> dict:
    return {
        "model_version": model_version,
        "user_id": order.user_id,
        "asset_id": order.asset_id,
        "order_id": order.order_id,
        "quantity": order.quantity,
        "order_price": order.order_price,
        "stop_price": order.stop_price,
        "triggered_at": order.triggered_at,
        "price": quote.price,
        "client_order_id": order.client_order_id,
        "expires_at": order.expires_at,
        "notional": order.notional,
        "time_in_force": order.time_in_force,
        "placed_via": order.placed_via,
        "api_key_id": order.api_key_id,
        "price_source": quote.source,
        "at": now,
    }


def market_buy_params(
    order: Order, *, quote: Quote, cost: Decimal, now: datetime, model_version: datetime | None = None
) -> dict:
    """The values of ``MARKET_BUY_SQL`` for a new BUY filled at ``quote`` for ``cost``."""
    return {**_arrival_params(order, quote=quote, now=now, model_version=model_version), "cost": cost, "debit": -cost}


class OwnFillModel(Exception):
    """A fill on arrival was priced under a fill model the account no longer has (this
    process did not know it set one, or changed it): nothing was written; the caller prices
    the order again under ``model`` of ``version``."""

    def __init__(self, model: FillParams, version: datetime | None) -> None:
        super().__init__("The account's fill model is another.")
        self.model, self.version = model, version


def _refused_for_its_model(order: Order, *, model_version: datetime | None) -> None:
    """After a fill on arrival wrote nothing: raise OwnFillModel when the statement's fill
    model check is what refused it (one query, only on that path)."""
    model, version = read_fill_model(user_id=order.user_id)
    if version != model_version:
        raise OwnFillModel(model, version)


def arrival_price(order: Order, *, quote: Quote, model: FillParams, quantity: Decimal | None = None) -> Decimal:
    """The price an order filled on arrival fills at: the quote's under ``ideal``; under a
    fill model with a spread or slippage, a BUY at the ask plus slippage and a SELL at the bid
    less it, the slippage of ``quantity`` (default: the whole order), never past the order's
    limit (docs/DESIGN.md, "Fill model")."""
    if model.spread_bps == 0 and model.slippage == SLIPPAGE_NONE:
        return quote.price
    size = order.quantity if quantity is None else quantity
    price = model.market_price(side=order.order_type, mid=quote.price, quantity=size, volume=quote.volume)
    if order.order_price is not None:
        price = min(price, order.order_price) if order.order_type == Order.Type.BUY else max(price, order.order_price)
    return price


def execute_buy_order(
    *, order: Order, quote: Quote, now: datetime, model: FillParams | None = None, model_version: datetime | None = None
) -> Fill:
    """Fill a new BUY (not stored yet) in one SQL statement that is its own transaction and
    takes the user lock itself (call it outside any lock), at ``quote.price`` or, under a
    fill model (``model``), at the
    ask plus slippage with the taker fee paid in the asset (``model_version``: the version of
    the account's own model it was read at; None: the deployment's): cost rounded up to the cent,
    debit USD, add the quantity (net of the fee) at the weighted average purchase price,
    insert the order COMPLETED and its ledger rows. ``order`` is left as stored. Raises
    InsufficientFunds with nothing written, OwnFillModel when the account turned out to have
    its own model, and IntegrityError when a concurrent request took the same
    client_order_id."""
    model = model or IDEAL_PARAMS
    price = arrival_price(order, quote=quote, model=model)
    priced = quote if price == quote.price else dataclasses.replace(quote, price=price)
    cost = to_cents_up(value_of(order.quantity, price))
    params = market_buy_params(order, quote=priced, cost=cost, now=now, model_version=model_version)
    fee_quantity = model.buy_fee(quantity=order.quantity, step=order.asset.step, maker=False)
    sql = MARKET_BUY_SQL
    if fee_quantity:
        sql = MARKET_BUY_FEE_SQL
        params.update(
            fee_quantity=fee_quantity,
            net_quantity=order.quantity - fee_quantity,
            fee_value=to_cents_up(value_of(fee_quantity, price)),
        )
    with durable_statement():
        fill = _run(sql, params)
    if fill is None:
        _refused_for_its_model(order, model_version=model_version)
        balance, held = UsdBalance.objects.filter(user_id=order.user_id).values_list("current_balance", "held").get()
        raise InsufficientFunds("Not enough available USD.", details={"available": balance - held, "required": cost})
    set_filled(order, fill)
    return fill


def execute_sell_order(
    *, order: Order, quote: Quote, now: datetime, model: FillParams | None = None, model_version: datetime | None = None
) -> Fill:
    """Fill a new SELL (not stored yet) at ``quote.price`` in one SQL statement that is its
    own transaction and takes the user lock itself (call it outside any lock): proceeds
    rounded down to the cent, take the quantity from the holding (realized P&L against its
    average purchase price), credit USD, insert the order COMPLETED and both ledger rows.
    ``order`` is left as stored. Under a fill model (``model``: see ``execute_buy_order``) it
    sells at the bid less slippage and pays the taker fee in USD, rounded up to the cent.
    Raises InsufficientAsset or BalanceLimitExceeded with nothing written, OwnFillModel, and
    IntegrityError when a concurrent request took the same client_order_id."""
    model = model or IDEAL_PARAMS
    price = arrival_price(order, quote=quote, model=model)
    priced = quote if price == quote.price else dataclasses.replace(quote, price=price)
    proceeds = to_cents_down(value_of(order.quantity, price))
    fee = model.sell_fee(proceeds=proceeds, maker=False)
    params = {
        **_arrival_params(order, quote=priced, now=now, model_version=model_version),
        "proceeds": proceeds,
        "max_balance": settings.MAX_USD_BALANCE,
    }
    sql = ARRIVAL_SELL_SQL
    if fee:
        sql = ARRIVAL_SELL_FEE_SQL
        params["fee"] = fee
    with durable_statement():
        fill = _run(sql, params)
    if fill is None:
        _refused_for_its_model(order, model_version=model_version)
        # What refused it, from a fresh read. When nothing does, the statement missed a
        # holding that a buy inserted while it waited for the user lock (its snapshot is
        # older than the lock): tried once more, which sees it.
        _explain_refused_sale(order, proceeds=proceeds - fee)
        with durable_statement():
            fill = _run(sql, params)
    if fill is None:
        _explain_refused_sale(order, proceeds=proceeds - fee)
        raise InsufficientAsset(f"Not enough {order.asset_id}.", details={"required": order.quantity})
    set_filled(order, fill)
    return fill


def _explain_refused_sale(order: Order, *, proceeds: Decimal) -> None:
    """Raise what refused a sale: too little unheld quantity, else a balance over the cap."""
    balance = UsdBalance.objects.get(user_id=order.user_id)
    holding = AssetBalance.objects.filter(user_id=order.user_id, asset_id=order.asset_id).first()
    available = holding.available_quantity if holding is not None else ZERO
    require_unheld(available=available, quantity=order.quantity, message=f"Not enough {order.asset_id}.")
    check_balance_limit(current_balance=balance.current_balance, amount=proceeds)


# --- Stored orders filled under the caller's user lock -------------------------------------


def resting_price(order: Order, *, quote: Quote, model: FillParams, quantity: Decimal) -> Decimal:
    """The price a stored order fills at under ``model``: a limit at its limit or better (the
    ask for a BUY, the bid for a SELL, when better), a stop without a limit as a market order
    (the ask plus slippage, the bid less it) (docs/DESIGN.md, "Fill model")."""
    if model.spread_bps == 0 and model.slippage == SLIPPAGE_NONE:
        return quote.price
    if order.order_price is None:
        return model.market_price(side=order.order_type, mid=quote.price, quantity=quantity, volume=quote.volume)
    bid, ask = model.bid_ask(quote.price)
    return min(order.order_price, ask) if order.order_type == Order.Type.BUY else max(order.order_price, bid)


def _fills_as_it_always_did(order: Order, model: FillParams, quantity: Decimal | None) -> bool:
    """Whole, at the quote, free: today's statements, unchanged."""
    return (
        order.filled_quantity == 0
        and quantity in (None, order.quantity)
        and model.spread_bps == 0
        and model.slippage == SLIPPAGE_NONE
        and model.maker_fee_bps == 0
        and model.taker_fee_bps == 0
    )


def fill_pending_order_locked(
    *,
    order: Order,
    usd: UsdBalance,
    quote: Quote,
    now: datetime,
    model: FillParams | None = None,
    quantity: Decimal | None = None,
    maker: bool = True,
) -> Fill:
    """Fill a stored PENDING order (resting, a replacement filled at once, a stop that
    triggered: its ``triggered_at`` is stored with the fill) at ``quote.price``, under the
    user lock the caller holds (``usd``, as locked): release its hold, move the money and
    the holding, write both ledger rows, and move the order to COMPLETED by compare-and-swap.
    ``order`` and ``usd`` are left as stored. Raises, with nothing written, InsufficientFunds
    (a stop BUY the market gapped past its hold), BalanceLimitExceeded (proceeds past
    MAX_USD_BALANCE) and OrderNoLongerPending (another worker or a cancel got there first).

    Under a fill model (``model``), ``quantity`` of what is left (default: all of it) fills at
    ``resting_price`` with the maker fee (``maker``: it rested), or at ``arrival_price`` with
    the taker's (a replacement filled at once, an ioc's part), by ``fill_part_locked``."""
    model = model or IDEAL_PARAMS
    if not _fills_as_it_always_did(order, model, quantity):
        return fill_part_locked(
            order=order,
            usd=usd,
            quote=quote,
            now=now,
            model=model,
            quantity=quantity or order.remaining_quantity,
            maker=maker,
        )
    params = {
        "user_id": order.user_id,
        "asset_id": order.asset_id,
        "order_id": order.order_id,
        "quantity": order.quantity,
        "held_amount": order.held_amount,
        "triggered_at": order.triggered_at,
        "price": quote.price,
        "price_source": quote.source,
        "at": now,
    }
    if order.order_type == Order.Type.BUY:
        cost = to_cents_up(value_of(order.quantity, quote.price))
        released = order.held_amount
        if usd.available + released < cost:
            raise InsufficientFunds("Not enough available USD.", details={"available": usd.available, "required": cost})
        params.update(cost=cost, debit=-cost, amount=cost, released=released)
        fill = _run(RESTING_BUY_SQL, params)
        if fill is not None:
            usd.current_balance, usd.held = usd.current_balance - cost, usd.held - released
    else:
        proceeds = to_cents_down(value_of(order.quantity, quote.price))
        check_balance_limit(current_balance=usd.current_balance, amount=proceeds)
        params.update(proceeds=proceeds, amount=proceeds, released=order.quantity, max_balance=settings.MAX_USD_BALANCE)
        fill = _run(RESTING_SELL_SQL, params)
        if fill is not None:
            usd.current_balance += proceeds
    if fill is None:
        raise OrderNoLongerPending("The order is no longer pending.", details={"order_id": str(order.pk)})
    usd.updated_at = now
    set_filled(order, fill)
    return fill


def fill_part_locked(
    *,
    order: Order,
    usd: UsdBalance,
    quote: Quote,
    now: datetime,
    model: FillParams,
    quantity: Decimal,
    maker: bool,
) -> Fill:
    """Fill ``quantity`` of a stored PENDING order (all or part of what is left) under
    ``model``, in one statement (``RESTING_BUY_PART_SQL``, ``RESTING_SELL_PART_SQL``): its
    ledger rows, its fee's row, its hold released in proportion (a BUY keeps holding what is
    left x its limit), and ``partly_filled``, or ``fill`` when it completes the order. The
    caller holds the user lock; ``order`` and ``usd`` are left as stored. Raises as
    ``fill_pending_order_locked``."""
    # A maker fills at its limit or better; a taker (an ioc's part, a replacement filled at
    # once) takes the market as any order arriving does, slippage of what it takes included.
    if maker:
        price = resting_price(order, quote=quote, model=model, quantity=quantity)
    else:
        price = arrival_price(order, quote=quote, model=model, quantity=quantity)
    remaining = order.remaining_quantity
    params = {
        "user_id": order.user_id,
        "asset_id": order.asset_id,
        "order_id": order.order_id,
        "quantity": quantity,
        "filled_before": order.filled_quantity,
        "held_amount": order.held_amount,
        "triggered_at": order.triggered_at,
        "price": price,
        "price_source": quote.source,
        "at": now,
    }
    if order.order_type == Order.Type.BUY:
        cost = to_cents_up(value_of(quantity, price))
        left = remaining - quantity
        # What is left keeps its hold at the limit (a stop's hold, its own price, goes whole).
        held_after = to_cents_up(value_of(left, order.order_price)) if left and order.order_price else ZERO
        held_after = min(held_after, order.held_amount)
        released = order.held_amount - held_after
        if usd.available + released < cost and order.order_price is not None and cost - released <= CENT:
            # A limit fills at its limit or better, so the part's cost can exceed what its hold
            # releases only by the cent that rounding the part's cost and the rest's hold up
            # apart can add: the part then costs what the hold releases, rounded down by that
            # cent (docs/DESIGN.md, "Fill model").
            cost = released + usd.available
        if usd.available + released < cost:
            raise InsufficientFunds("Not enough available USD.", details={"available": usd.available, "required": cost})
        step = get_asset(order.asset_id).step  # this process's recent read: no query
        fee_quantity = model.buy_fee(quantity=quantity, step=step, maker=maker)
        params.update(
            cost=cost,
            debit=-cost,
            amount=cost,
            released=released,
            held_after=held_after,
            fee_quantity=fee_quantity,
            net_quantity=quantity - fee_quantity,
            fee_value=to_cents_up(value_of(fee_quantity, price)),
        )
        fill = _run(RESTING_BUY_PART_SQL, params)
        if fill is not None:
            usd.current_balance, usd.held = usd.current_balance - cost, usd.held - released
            order.held_amount = held_after
    else:
        proceeds = to_cents_down(value_of(quantity, price))
        fee = model.sell_fee(proceeds=proceeds, maker=maker)
        check_balance_limit(current_balance=usd.current_balance, amount=proceeds - fee)
        params.update(
            proceeds=proceeds,
            amount=proceeds,
            fee=fee,
            released=quantity,
            held_after=ZERO,
            max_balance=settings.MAX_USD_BALANCE,
        )
        fill = _run(RESTING_SELL_PART_SQL, params)
        if fill is not None:
            usd.current_balance += proceeds - fee
    if fill is None:
        raise OrderNoLongerPending("The order is no longer pending.", details={"order_id": str(order.pk)})
    usd.updated_at = now
    filled = order.filled_quantity + quantity
    average = (order.executed_price or ZERO) * order.filled_quantity + price * quantity
    order.executed_price = (average / filled).quantize(PRICE.step, rounding=ROUND_HALF_UP)
    order.total_amount = (order.total_amount or ZERO) + fill.amount
    order.filled_quantity = filled
    order.updated_at = now
    if filled == order.quantity:
        order.status, order.filled_at, order.held_amount = Order.Status.COMPLETED, now, ZERO
    return fill


# --- The order's side of a fill ---------------------------------------------------------


def set_filled(order: Order, fill: Fill) -> None:
    """Leave ``order`` as its (whole) fill stored it."""
    order.status = Order.Status.COMPLETED
    order.filled_quantity = order.quantity
    order.executed_price, order.total_amount = fill.price, fill.amount
    order.filled_at = order.updated_at = fill.filled_at
    order.held_amount = ZERO


def as_stored(order: Order) -> Order:
    """The same order as an instance loaded from its stored row (``Model.from_db``), so that a
    later save() updates the row a statement inserted instead of inserting it again."""
    names = [field.attname for field in Order._meta.concrete_fields]
    stored = Order.from_db(connection.alias, names, [getattr(order, name) for name in names])
    for relation in ("user", "asset"):  # keep the relations already loaded: no query
        field = Order._meta.get_field(relation)
        if field.is_cached(order):
            field.set_cached_value(stored, field.get_cached_value(order))
    return stored
