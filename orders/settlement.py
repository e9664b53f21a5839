"""Settling fills: the one module that writes what a filled order moves (SPEC section 4).

A fill writes five tables: the order, the user's USD balance, the holding, and one row in
each ledger. Two paths write them, both here, so that a new column or a new ledger rule is
added in one place:

- ``execute_buy_order``: a BUY filled on arrival, as ONE SQL statement that is its own
  transaction and takes the user lock itself (``MARKET_BUY_SQL``);
- ``fill_resting_buy_locked``, ``execute_sell_order`` and ``fill_resting_sell_locked``: under
  the user lock the caller holds, through the ORM and the holding upsert that the
  one-statement buy uses too (``ADD_BOUGHT_QUANTITY_SQL``).

Orders owns this module because a fill is an order's: balances keeps the cash movements
that are not fills (deposits, withdrawals, adjustments) and the balance rows' own rules.
Raw INSERTs are built by ``insert_sql`` from each model's concrete columns, so a new NOT
NULL column fails at import instead of at the first fill; ``scripts/bench`` builds its SQL
with the same functions.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction

from assets.prices import Quote
from balances.lock_objects import asset_balance_for_update
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import apply_cash_locked, check_balance_limit_locked, update_asset_balance
from core.exceptions import InsufficientAsset, InsufficientFunds, OrderNoLongerPending
from core.money import EXACT, PRICE, ZERO, to_cents, to_cents_down, to_cents_up, value_of
from core.sql import insert_sql
from orders.lock_objects import transition_pending
from orders.models import Order

# --- Raw INSERTs, from the models' columns --------------------------------------------------


def order_insert_sql(*, source: str = "", **values: str) -> str:
    """An order row; columns a fill or a resting order leaves empty default to it."""
    defaults = {
        "order_price": "NULL",
        "total_amount": "NULL",
        "executed_price": "NULL",
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
    rounding included, SPEC 11): insert the holding at cost / quantity, or move its average
    purchase price to (quantity x average + cost) / (quantity + bought), so that the cost
    basis of what is held is what was paid for it. ``values`` gives user_id, asset_id,
    quantity, last_transaction_at, created_at, updated_at. PostgreSQL's numeric arithmetic
    is exact; round() rounds half away from zero."""
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


_BOUGHT = {
    "user_id": "%(user_id)s",
    "asset_id": "%(asset_id)s",
    "quantity": "%(quantity)s",
    "cost": "%(cost)s",
    "last_transaction_at": "%(at)s",
    "created_at": "%(at)s",
    "updated_at": "%(at)s",
}

# The holding upsert of a resting BUY's fill (the caller holds the user lock).
ADD_BOUGHT_QUANTITY_SQL = add_bought_quantity_sql(**_BOUGHT)

# A market BUY (or a marketable limit) as ONE SQL statement, run as its own transaction: take
# the user lock by debiting USD (the UPDATE's WHERE is the funds check, evaluated on the
# locked, newest row version), then add to the holding, then insert the order and both ledger
# rows. Each step selects FROM the one before, so PostgreSQL runs them in the lock order of
# SPEC section 4 (USD balance, asset balance, order); when the debit finds too little money,
# no later step has a row to work on and the statement changes nothing. One round trip and
# one commit: the user lock is held for microseconds, not for eight round trips.
# What the order and both ledger rows of the buy share.
_OF_THE_BUY = {"user_id": "%(user_id)s", "created_at": "%(at)s"}
_OF_THE_FILL = {**_OF_THE_BUY, "asset_id": "%(asset_id)s", "quantity": "%(quantity)s"}
_PLACED_SQL = order_insert_sql(
    source="FROM holding",
    **_OF_THE_FILL,
    order_id="%(order_id)s",
    order_type=f"'{Order.Type.BUY}'",
    order_price="%(order_price)s",
    # A stop the price triggered on arrival is stored as the stop it was answered as.
    stop_price="%(stop_price)s",
    triggered_at="%(triggered_at)s",
    total_amount="%(cost)s",
    executed_price="%(price)s",
    status=f"'{Order.Status.COMPLETED}'",
    client_order_id="%(client_order_id)s",
    expires_at="%(expires_at)s",
    notional="%(notional)s",
    time_in_force="%(time_in_force)s",
    updated_at="%(at)s",
    filled_at="%(at)s",
    placed_via="%(placed_via)s",
    api_key_id="%(api_key_id)s",
)
_CASH_SQL = cash_row_insert_sql(
    source="FROM debit, placed",
    **_OF_THE_BUY,
    transaction_type=f"'{CashTransaction.Type.BUY}'",
    amount="%(debit)s",
    balance_after="debit.current_balance",
    order_id="placed.order_id",
)
_ASSET_ROW_SQL = asset_row_insert_sql(
    source="FROM placed",
    **_OF_THE_FILL,
    transaction_type=f"'{AssetTransaction.Type.BUY}'",
    price_per_unit="%(price)s",
    total_amount="%(cost)s",
    order_id="placed.order_id",
    price_source="%(price_source)s",
)
MARKET_BUY_SQL = f"""
WITH debit AS (
    UPDATE balances_usdbalance SET current_balance = current_balance - %(cost)s, updated_at = %(at)s
    WHERE user_id = %(user_id)s AND current_balance - held >= %(cost)s
    RETURNING current_balance
), holding AS (
    {add_bought_quantity_sql(source="FROM debit", **_BOUGHT)}
    RETURNING b.id
), placed AS (
    {_PLACED_SQL}
    RETURNING order_id
), cash AS (
    {_CASH_SQL}
)
{_ASSET_ROW_SQL}
RETURNING order_id
"""


@contextmanager
def durable_statement():
    """The transaction of one SQL statement, under ``atomic(durable=True)``'s rule. In
    autocommit mode the statement is its own transaction, so no BEGIN and COMMIT round trips
    (they would double the market buy's); inside a caller's atomic block it refuses, as
    durable=True does, except in a test case's block, where it is a savepoint that keeps a
    unique violation from poisoning the test's transaction."""
    with transaction.atomic(durable=True) if connection.in_atomic_block else nullcontext():
        yield


# --- BUY fills ---------------------------------------------------------------------------


def market_buy_params(order: Order, *, quote: Quote, cost: Decimal, now: datetime) -> dict:
    """The values of ``MARKET_BUY_SQL`` for a new BUY filled at ``quote`` for ``cost``."""
    return {
        "user_id": order.user_id,
        "asset_id": order.asset_id,
        "order_id": order.order_id,
        "quantity": order.quantity,
        "order_price": order.order_price,
        "stop_price": order.stop_price,
        "triggered_at": order.triggered_at,
        "price": quote.price,
        "cost": cost,
        "debit": -cost,
        "client_order_id": order.client_order_id,
        "expires_at": order.expires_at,
        "notional": order.notional,
        "time_in_force": order.time_in_force,
        "placed_via": order.placed_via,
        "api_key_id": order.api_key_id,
        "price_source": quote.source,
        "at": now,
    }


def execute_buy_order(*, order: Order, quote: Quote, now: datetime) -> Order:
    """Fill a new BUY (not stored yet) at ``quote.price`` in one SQL statement that is its
    own transaction and takes the user lock itself (call it outside any lock): cost rounded
    up to the cent, debit USD, add the quantity at the weighted average purchase price,
    insert the order COMPLETED and both ledger rows. Raises InsufficientFunds with nothing
    written, and IntegrityError when a concurrent request took the same client_order_id."""
    cost = to_cents_up(value_of(order.quantity, quote.price))
    params = market_buy_params(order, quote=quote, cost=cost, now=now)
    # Prepared once per connection: planning this statement costs PostgreSQL more than running it.
    with durable_statement(), connection.prepared_cursor() as cursor:
        cursor.execute(MARKET_BUY_SQL, params)
        filled = cursor.fetchone() is not None
    if not filled:
        balance, held = UsdBalance.objects.filter(user_id=order.user_id).values_list("current_balance", "held").get()
        raise InsufficientFunds("Not enough available USD.", details={"available": balance - held, "required": cost})
    _set_filled(order, executed_price=quote.price, total_amount=cost, now=now)
    return _as_stored(order)


def fill_resting_buy_locked(*, order: Order, usd: UsdBalance, quote: Quote, now: datetime) -> Order:
    """Fill a resting (stored, PENDING) BUY at ``quote.price`` under the user lock the
    caller holds (``usd``): release its hold, debit the cost, add the quantity, write both
    ledger rows, and move the order to COMPLETED by compare-and-swap. Raises
    OrderNoLongerPending when another worker or a cancel got there first."""
    cost = to_cents_up(value_of(order.quantity, quote.price))
    released = order.held_amount
    if usd.available + released < cost:  # cannot happen while cost <= hold; kept as a guard
        raise InsufficientFunds("Not enough available USD.", details={"available": usd.available, "required": cost})
    _complete_pending(order, executed_price=quote.price, total_amount=cost, now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            ADD_BOUGHT_QUANTITY_SQL,
            {
                "user_id": order.user_id,
                "asset_id": order.asset_id,
                "quantity": order.quantity,
                "cost": cost,
                "at": now,
            },
        )
    apply_cash_locked(
        balance=usd, transaction_type=CashTransaction.Type.BUY, amount=-cost, order=order, held_change=-released
    )
    _write_asset_row(order, quote=quote, total_amount=cost, realized_pnl=None)
    return order


# --- SELL fills --------------------------------------------------------------------------


def execute_sell_order(*, order: Order, usd: UsdBalance, quote: Quote, now: datetime) -> Order:
    """Fill a new SELL (not stored yet) at ``quote.price`` under the user lock the caller
    holds: requires the unheld quantity, then settles (see ``_settle_sell``) and inserts the
    order COMPLETED. Raises InsufficientAsset or BalanceLimitExceeded with nothing written."""
    holding = asset_balance_for_update(user_id=order.user_id, asset_id=order.asset_id)
    unheld = holding.available_quantity if holding else ZERO
    if unheld < order.quantity:
        raise InsufficientAsset(
            f"Not enough {order.asset_id}.", details={"available": unheld, "required": order.quantity}
        )
    proceeds = to_cents_down(value_of(order.quantity, quote.price))
    check_balance_limit_locked(balance=usd, amount=proceeds)  # before anything is written
    _set_filled(order, executed_price=quote.price, total_amount=proceeds, now=now)
    order.save(force_insert=True)
    return _settle_sell(order, usd=usd, holding=holding, quote=quote, released=ZERO)


def fill_resting_sell_locked(*, order: Order, usd: UsdBalance, quote: Quote, now: datetime) -> Order:
    """Fill a resting (stored, PENDING) SELL at ``quote.price`` under the user lock the
    caller holds: its held quantity is released by the fill, the order moves to COMPLETED by
    compare-and-swap. Raises OrderNoLongerPending when another worker or a cancel won, and
    BalanceLimitExceeded (nothing written) when the proceeds would pass MAX_USD_BALANCE."""
    holding = asset_balance_for_update(user_id=order.user_id, asset_id=order.asset_id)
    proceeds = to_cents_down(value_of(order.quantity, quote.price))
    check_balance_limit_locked(balance=usd, amount=proceeds)  # before anything is written
    _complete_pending(order, executed_price=quote.price, total_amount=proceeds, now=now)
    return _settle_sell(order, usd=usd, holding=holding, quote=quote, released=order.quantity)


def _settle_sell(order: Order, *, usd: UsdBalance, holding: AssetBalance, quote: Quote, released: Decimal) -> Order:
    """Take the quantity (and ``released`` of its hold) from the holding, credit the proceeds,
    realized P&L against the average purchase price (which a sell leaves unchanged), and
    write both ledger rows."""
    proceeds = order.total_amount
    realized_pnl = to_cents(EXACT.subtract(proceeds, value_of(order.quantity, holding.average_purchase_price)))
    update_asset_balance(
        holding=holding,
        user_id=order.user_id,
        asset=order.asset,
        quantity=-order.quantity,
        price=quote.price,
        at=order.filled_at,
        held_change=-released,
    )
    apply_cash_locked(balance=usd, transaction_type=CashTransaction.Type.SELL, amount=proceeds, order=order)
    _write_asset_row(order, quote=quote, total_amount=proceeds, realized_pnl=realized_pnl)
    return order


# --- The order's side of a fill ---------------------------------------------------------


def _set_filled(order: Order, *, executed_price: Decimal, total_amount: Decimal, now: datetime) -> None:
    order.status = Order.Status.COMPLETED
    order.executed_price, order.total_amount, order.filled_at, order.updated_at = executed_price, total_amount, now, now
    order.held_amount = ZERO


def _as_stored(order: Order) -> Order:
    """The same order as an instance loaded from its stored row (``Model.from_db``), so that a
    later save() updates the row the statement inserted instead of inserting it again."""
    names = [field.attname for field in Order._meta.concrete_fields]
    stored = Order.from_db(connection.alias, names, [getattr(order, name) for name in names])
    for relation in ("user", "asset"):  # keep the relations already loaded: no query
        field = Order._meta.get_field(relation)
        if field.is_cached(order):
            field.set_cached_value(stored, field.get_cached_value(order))
    return stored


def _complete_pending(order: Order, *, executed_price: Decimal, total_amount: Decimal, now: datetime) -> None:
    """PENDING -> COMPLETED by compare-and-swap; OrderNoLongerPending if it was not PENDING."""
    fill = {"executed_price": executed_price, "total_amount": total_amount, "filled_at": now, "held_amount": ZERO}
    if not transition_pending(order_id=order.pk, to_status=Order.Status.COMPLETED, updated_at=now, **fill):
        raise OrderNoLongerPending("The order is no longer pending.", details={"order_id": str(order.pk)})
    _set_filled(order, executed_price=executed_price, total_amount=total_amount, now=now)


def _write_asset_row(order: Order, *, quote: Quote, total_amount: Decimal, realized_pnl: Decimal | None) -> None:
    AssetTransaction.objects.create(
        user_id=order.user_id,
        asset=order.asset,
        transaction_type=order.order_type,
        quantity=order.quantity,
        price_per_unit=quote.price,
        total_amount=total_amount,
        realized_pnl=realized_pnl,
        order=order,
        status=AssetTransaction.Status.COMPLETED,
        price_source=quote.source,
        created_at=order.filled_at,
    )
