"""The trading engine: placing, filling, cancelling and expiring orders (SPEC section 4).

Every flow is one database transaction that takes its locks in one order: the user's
``UsdBalance`` (the user lock), then the asset balance, then the order (a compare-and-swap
update). The market price is always fetched *before* the first lock, so no row lock is
ever held across a network call.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from assets.models import Asset
from assets.prices import Quote, get_quotes, get_trade_quote
from assets.selectors import get_asset
from balances.lock_objects import asset_balance_for_update, usd_balance_for_update
from balances.models import UsdBalance
from balances.services import change_hold_locked
from core.exceptions import (
    Conflict,
    DomainError,
    InsufficientAsset,
    InsufficientFunds,
    InvalidRequest,
    OrderNoLongerPending,
    OrderNotCancellable,
    PriceUnavailable,
)
from core.money import (
    EXACT,
    PRICE_DECIMALS,
    PRICE_MAX_DIGITS,
    QUANTITY_DECIMALS,
    QUANTITY_MAX_DIGITS,
    ZERO,
    decimal_places,
    to_cents,
    to_cents_up,
    value_of,
)
from orders.lock_objects import claim_pending_order, pending_order_ids_crossed, transition_pending
from orders.models import CLIENT_ORDER_ID_CONSTRAINT, Order
from orders.settlement import (
    durable_statement,
    execute_buy_order,
    execute_sell_order,
    fill_resting_buy_locked,
    fill_resting_sell_locked,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    created: bool  # False when a repeated client_order_id returned the original order


class OrderFailed(DomainError):
    """Wraps the domain error of an order that was stored FAILED, so callers can show it."""

    def __init__(self, error: DomainError, order: Order) -> None:
        super().__init__(error.message, details={**error.details, "order_id": str(order.order_id)})
        self.code = error.code
        self.order = order


# --- Validation (no locks) ----------------------------------------------------------


def _get_tradable_asset(asset_id: str) -> Asset:
    asset = get_asset(asset_id)
    if asset is None:
        raise InvalidRequest(f"Unknown asset {asset_id!r}.", details={"asset_id": ["Unknown asset."]})
    if not asset.is_active:
        raise InvalidRequest(f"{asset_id} is not tradable.", details={"asset_id": ["Asset is not active."]})
    return asset


def _validate_order_shape(*, asset: Asset, quantity: Decimal, order_price: Decimal | None, expires_at, now) -> None:
    if quantity <= 0:
        raise InvalidRequest("Quantity must be positive.", details={"quantity": ["Must be positive."]})
    if decimal_places(quantity) > asset.quantity_decimals:
        raise InvalidRequest(
            f"{asset.asset_id} quantities have at most {asset.quantity_decimals} decimals.",
            details={"quantity": [f"At most {asset.quantity_decimals} decimal places."]},
        )
    # Values that do not fit their columns: PostgreSQL would round a finer limit price
    # (after its hold was computed from the unrounded one) and refuse a quantity with more
    # than 20 integer digits only when storing the order, as a 500 instead of a 400.
    if not quantity.is_finite() or quantity.adjusted() >= QUANTITY_MAX_DIGITS - QUANTITY_DECIMALS:
        raise InvalidRequest("Quantity is too large.", details={"quantity": ["At most 20 digits before the point."]})
    if order_price is not None and order_price <= 0:
        raise InvalidRequest("Limit price must be positive.", details={"order_price": ["Must be positive."]})
    if order_price is not None and (
        not order_price.is_finite()
        or decimal_places(order_price) > PRICE_DECIMALS
        or order_price.adjusted() >= PRICE_MAX_DIGITS - PRICE_DECIMALS
    ):
        raise InvalidRequest(
            "Limit price does not fit 18 digits before and 12 after the point.",
            details={"order_price": [f"At most {PRICE_DECIMALS} decimal places and 18 digits before the point."]},
        )
    if expires_at is not None:
        if order_price is None:
            raise InvalidRequest(
                "Only limit orders expire.", details={"expires_at": ["Only limit orders take expires_at."]}
            )
        if expires_at <= now:
            raise InvalidRequest("expires_at is in the past.", details={"expires_at": ["Must be in the future."]})


def _validate_notional(*, quantity: Decimal, price: Decimal) -> None:
    notional = value_of(quantity, price)
    if notional < settings.MIN_ORDER_NOTIONAL:
        raise InvalidRequest(
            f"Orders must be worth at least {settings.MIN_ORDER_NOTIONAL} USD.",
            details={"quantity": [f"Order value {to_cents(notional)} is below {settings.MIN_ORDER_NOTIONAL} USD."]},
        )


def _replay(*, user_id: int, client_order_id: str, asset_id: str, order_type: str, quantity, order_price):
    """The original order for a repeated client_order_id, or Conflict if its parameters differ."""
    existing = Order.objects.filter(user_id=user_id, client_order_id=client_order_id).first()
    if existing is None:
        return None
    same = (
        existing.asset_id == asset_id
        and existing.order_type == order_type
        and existing.quantity == quantity
        and existing.order_price == order_price
    )
    if not same:
        raise Conflict(
            "client_order_id was already used for a different order.",
            details={"client_order_id": client_order_id, "order_id": str(existing.order_id)},
        )
    return existing


# --- Resting (caller holds the user lock) -------------------------------------------


def _rest_locked(*, order: Order, usd: UsdBalance) -> None:
    """Store a limit order that the market has not crossed, reserving what it would spend."""
    if order.order_type == Order.Type.BUY:
        hold = to_cents_up(value_of(order.quantity, order.order_price))
        if usd.available < hold:
            raise InsufficientFunds(
                "Not enough available USD to hold for this limit order.",
                details={"available": str(usd.available), "required": str(hold)},
            )
        order.held_amount = hold
        order.save(force_insert=True)
        change_hold_locked(balance=usd, held_change=hold)
        return
    holding = asset_balance_for_update(user_id=order.user_id, asset=order.asset)
    unheld = holding.available_quantity if holding else ZERO
    if unheld < order.quantity:
        raise InsufficientAsset(
            f"Not enough {order.asset_id}.", details={"available": str(unheld), "required": str(order.quantity)}
        )
    order.save(force_insert=True)
    holding.held_quantity += order.quantity
    holding.updated_at = timezone.now()
    holding.save(update_fields=["held_quantity", "updated_at"])


def _is_marketable(order: Order, price: Decimal) -> bool:
    if order.order_price is None:
        return True
    if order.order_type == Order.Type.BUY:
        return price <= order.order_price
    return price >= order.order_price


# --- Placing ------------------------------------------------------------------------


def place_order(
    *,
    user: AbstractBaseUser,
    asset_id: str,
    order_type: str,
    quantity: Decimal,
    order_price: Decimal | None = None,
    expires_at: datetime | None = None,
    client_order_id: str | None = None,
) -> PlacedOrder:
    """Place a market or limit order for ``user``.

    Validates (400, nothing stored) and fetches a fresh price (before any lock). A BUY the
    market crosses is then filled by the single-statement ``execute_buy_order``; a SELL the
    market crosses is filled, and a limit order it does not cross rests with a hold, under
    the user lock. Raises InvalidRequest, Conflict (client_order_id reused with other
    parameters), and OrderFailed wrapping PriceUnavailable, InsufficientFunds or
    InsufficientAsset: those orders are stored FAILED with their reason and nothing moves.
    """
    now = timezone.now()
    asset = _get_tradable_asset(asset_id)
    _validate_order_shape(asset=asset, quantity=quantity, order_price=order_price, expires_at=expires_at, now=now)
    replay_key = {
        "user_id": user.pk,
        "asset_id": asset.asset_id,
        "order_type": order_type,
        "quantity": quantity,
        "order_price": order_price,
    }
    if client_order_id is not None:
        existing = _replay(client_order_id=client_order_id, **replay_key)
        if existing is not None:
            return PlacedOrder(existing, created=False)
    if order_price is not None:
        _validate_notional(quantity=quantity, price=order_price)
    try:
        quote: Quote | None = get_trade_quote(asset)
        price_error = None
    except PriceUnavailable as error:
        quote, price_error = None, error
    if quote is not None and order_price is None:
        _validate_notional(quantity=quantity, price=quote.price)

    order = Order(
        user=user,
        asset=asset,
        order_type=order_type,
        quantity=quantity,
        order_price=order_price,
        client_order_id=client_order_id,
        created_at=now,
        expires_at=expires_at or (now + settings.DEFAULT_ORDER_TTL if order_price is not None else None),
    )
    if price_error is None and order_type == Order.Type.BUY and _is_marketable(order, quote.price):
        return _place_filled_buy(order, quote=quote, now=now, replay_key=replay_key)

    failure: DomainError | None = None
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=user.pk)
        if client_order_id is not None:
            # Authoritative check: all of this user's orders are inserted under the lock we hold.
            existing = _replay(client_order_id=client_order_id, **replay_key)
            if existing is not None:
                return PlacedOrder(existing, created=False)
        # No savepoint needed: every check below raises before its flow writes anything.
        try:
            if price_error is not None:
                raise price_error
            if not _is_marketable(order, quote.price):
                _rest_locked(order=order, usd=usd)
            else:
                execute_sell_order(order=order, usd=usd, quote=quote, now=now)
        except (InsufficientFunds, InsufficientAsset, PriceUnavailable) as error:
            failure = error
            _store_failed(order, reason=error.message)
    if failure is not None:
        raise OrderFailed(failure, order)
    return PlacedOrder(order, created=True)


def _place_filled_buy(order: Order, *, quote: Quote, now: datetime, replay_key: dict) -> PlacedOrder:
    """A BUY the market fills at once, through the single-statement ``execute_buy_order``."""
    try:
        try:
            with localcontext(EXACT):
                order = execute_buy_order(order=order, quote=quote, now=now)
        except InsufficientFunds as error:
            with durable_statement():
                _store_failed(order, reason=error.message)
            raise OrderFailed(error, order)
    except IntegrityError as error:
        # A concurrent request with the same client_order_id won the unique index; the
        # statement rolled back whole. Answer like a replay (or a conflict).
        if order.client_order_id is None or CLIENT_ORDER_ID_CONSTRAINT not in str(error):
            raise
        existing = _replay(client_order_id=order.client_order_id, **replay_key)
        return PlacedOrder(existing, created=False)
    return PlacedOrder(order, created=True)


def _store_failed(order: Order, *, reason: str) -> None:
    order.status = Order.Status.FAILED
    order.failure_reason = reason[:255]
    order.held_amount = ZERO
    order.executed_price = order.total_amount = order.filled_at = None
    order.save(force_insert=True)


# --- Cancelling and expiring ---------------------------------------------------------


def _close_pending(*, order: Order, to_status: str) -> Order:
    """Move a PENDING order to CANCELLED or EXPIRED and release its hold. Takes the owner's
    user lock, then the holding (SELL), then swaps the order's status. Raises
    OrderNotCancellable when it is no longer PENDING."""
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=order.user_id)
        holding = None
        if order.order_type == Order.Type.SELL:
            holding = asset_balance_for_update(user_id=order.user_id, asset=order.asset)
        fresh = Order.objects.get(pk=order.pk)
        if not transition_pending(order_id=order.pk, to_status=to_status, held_amount=ZERO):
            raise OrderNotCancellable(
                f"Only PENDING orders can be cancelled; this one is {fresh.status}.",
                details={"order_id": str(order.pk), "status": fresh.status},
            )
        if fresh.order_type == Order.Type.BUY:
            change_hold_locked(balance=usd, held_change=-fresh.held_amount)
        else:
            holding.held_quantity -= fresh.quantity
            holding.updated_at = timezone.now()
            holding.save(update_fields=["held_quantity", "updated_at"])
    order.refresh_from_db()
    return order


def cancel_order(*, order: Order) -> Order:
    """Cancel a PENDING order (owner or staff; the caller checks who may). See _close_pending."""
    return _close_pending(order=order, to_status=Order.Status.CANCELLED)


def expire_order(*, order: Order) -> Order:
    return _close_pending(order=order, to_status=Order.Status.EXPIRED)


# --- The resting-order processor ----------------------------------------------------


@dataclass
class ProcessReport:
    filled: int = 0
    expired: int = 0
    skipped: int = 0  # lost a race to another worker or a cancel, or could not be filled
    failed: int = 0  # raised an error of its own: logged and left PENDING for the next pass


def fill_resting_order(*, order_id, quote: Quote) -> bool:
    """Fill one resting limit order at ``quote`` if it is still PENDING and crossed.
    Returns False when another worker or a cancel got there first."""
    with transaction.atomic(durable=True), localcontext(EXACT):
        order = claim_pending_order(order_id=order_id)
        if order is None or not _is_marketable(order, quote.price):
            return False
        usd = usd_balance_for_update(user_id=order.user_id)
        now = timezone.now()
        fill = fill_resting_buy_locked if order.order_type == Order.Type.BUY else fill_resting_sell_locked
        try:
            fill(order=order, usd=usd, quote=quote, now=now)
        except OrderNoLongerPending:
            return False  # another worker filled or a user cancelled it after our read
    return True


# The database itself is unreachable or restarting: no other order would fare better, so
# the pass ends and process_orders reconnects and backs off.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)


@contextmanager
def _one_order(order_id, report: ProcessReport):
    """Keep one order's failure from stopping everyone else's fills.

    A value that overflows a column (DataError), a constraint it breaks or a bug its data
    triggers is that order's problem: its own transaction has rolled back, so it is logged
    with its id, stays PENDING, and the pass goes on. Catching every exception is deliberate
    here; only a lost database connection ends the pass.
    """
    try:
        yield
    except DATABASE_UNREACHABLE:
        raise
    except Exception:
        report.failed += 1
        logger.exception("process_orders: order %s could not be processed; skipped, it stays PENDING", order_id)


def process_resting_orders(*, now: datetime | None = None, progress=None) -> ProcessReport:
    """Expire PENDING orders past ``expires_at``, then fill those the market price crosses.

    Safe to run in several processes at once: every transition is a compare-and-swap on
    ``status = 'PENDING'`` taken under the owner's user lock, so an order is filled or
    expired exactly once. Prices are fetched once per run, before any lock.
    """
    now = now or timezone.now()
    report = ProcessReport()
    expired = Order.objects.filter(status=Order.Status.PENDING, expires_at__lte=now).select_related("asset")
    for order in expired.iterator():
        with _one_order(order.order_id, report):
            try:
                expire_order(order=order)
                report.expired += 1
            except OrderNotCancellable:
                report.skipped += 1
    asset_ids = Order.objects.filter(status=Order.Status.PENDING).values_list("asset_id", flat=True).distinct()
    assets = list(Asset.objects.filter(pk__in=list(asset_ids), is_active=True))
    quotes = get_quotes(assets)
    for asset in assets:
        quote = quotes.get(asset.asset_id)
        if quote is None or quote.stale:
            logger.warning("process_orders: no fresh price for %s, its orders wait", asset.asset_id)
            continue
        for order_type in (Order.Type.BUY, Order.Type.SELL):
            for order_id in pending_order_ids_crossed(
                asset_id=asset.asset_id, order_type=order_type, price=quote.price
            ):
                with _one_order(order_id, report):
                    if fill_resting_order(order_id=order_id, quote=quote):
                        report.filled += 1
                    else:
                        report.skipped += 1
                if progress is not None:
                    progress(report)
    return report
