"""The trading engine: placing, replacing, filling, cancelling and expiring orders, and
closing positions (docs/DESIGN.md, "How an order flows").

Every flow is one database transaction that takes its locks in the one order of
docs/DESIGN.md, "Lock order" (``balances.lock_objects`` and ``orders.lock_objects`` enforce
it). The market price is always fetched *before* the first lock, so no row lock is ever
held across a network call. Services are keyword-only and own their transaction
(``atomic(durable=True)``); helpers named ``*_locked`` run inside it. What a fill writes
is ``orders.settlement``; what an order must be before it is priced, ``orders.validation``.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from assets.models import Asset
from assets.prices import Quote, get_quotes, get_trade_quote
from assets.selectors import get_asset
from balances.lock_objects import (
    asset_balance_for_update,
    asset_balances_for_update,
    held_asset_balances_for_update,
    usd_balance_for_update,
)
from balances.models import AccountReset, AssetBalance, UsdBalance
from balances.services import (
    change_held_quantity_locked,
    change_hold_locked,
    replay_reset_locked,
    require_unheld,
    reset_balances_locked,
    validate_reset_cash,
)
from core.exceptions import (
    BalanceLimitExceeded,
    Conflict,
    DomainError,
    InsufficientAsset,
    InsufficientFunds,
    InvalidRequest,
    OrderNoLongerPending,
    OrderNotCancellable,
    PositionNotFound,
)
from core.money import EXACT, ZERO, to_cents_up, value_of
from orders import fill_model
from orders.events import Event, OrderEvent, announce, order_event
from orders.lock_objects import (
    claim_pending_order,
    release_client_order_id,
    transition_every_pending,
    transition_pending,
    trigger_pending,
)
from orders.models import CLIENT_ORDER_ID_CONSTRAINT, AccountFillModel, Order
from orders.selectors import (
    fill_model_for_order,
    params_of,
    pending_order_ids_crossed,
    read_fill_model,
    remember_fill_model,
)
from orders.settlement import (
    OwnFillModel,
    as_stored,
    execute_buy_order,
    execute_sell_order,
    fill_pending_order_locked,
)
from orders.validation import (
    API_ORIGIN,
    OrderChanges,
    OrderOrigin,
    OrderRequest,
    held_by_transient_refusal,
    quantity_for_notional,
    replay_or_conflict,
    tradable_asset,
    validate_request,
    validate_value,
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


# --- When an order acts, and what it holds (no locks) ----------------------------------


def stop_reached(*, order_type: str, stop_price: Decimal, price: Decimal) -> bool:
    """A stop BUY triggers when the market rises to its stop, a stop SELL when it falls to it."""
    return price >= stop_price if order_type == Order.Type.BUY else price <= stop_price


def limit_crossed(*, order_type: str, order_price: Decimal, price: Decimal) -> bool:
    """A BUY limit fills at its price or lower, a SELL limit at its price or higher."""
    return price <= order_price if order_type == Order.Type.BUY else price >= order_price


def fills_at(order: Order, price: Decimal) -> bool:
    """Whether ``order`` fills at ``price`` now: a market order always; a stop once the price
    reaches its stop (or it was triggered before); then, with a limit price, only where
    the limit is crossed."""
    armed = order.stop_price is None or order.triggered_at is not None
    if not armed and not stop_reached(order_type=order.order_type, stop_price=order.stop_price, price=price):
        return False
    if order.order_price is None:
        return True
    return limit_crossed(order_type=order.order_type, order_price=order.order_price, price=price)


def _trigger_if_reached(order: Order, *, price: Decimal, now: datetime) -> None:
    """Mark a stop triggered when ``price`` reaches it (checked when an order is placed)."""
    if order.stop_price is None or order.triggered_at is not None:
        return
    if stop_reached(order_type=order.order_type, stop_price=order.stop_price, price=price):
        order.triggered_at = now


def buy_hold(order: Order) -> Decimal:
    """The USD a resting BUY reserves: quantity x limit price, or for a stop without a limit,
    quantity x stop price x (1 + STOP_BUY_HOLD_MARGIN), since it fills at whatever the
    market is past its stop. Rounded up to the cent."""
    if order.order_price is not None:
        return to_cents_up(value_of(order.quantity, order.order_price))
    margin = EXACT.add(Decimal(1), settings.STOP_BUY_HOLD_MARGIN)
    return to_cents_up(EXACT.multiply(value_of(order.quantity, order.stop_price), margin))


# --- Placing ------------------------------------------------------------------------


def place_order(*, user: AbstractBaseUser, request: OrderRequest, origin: OrderOrigin = API_ORIGIN) -> PlacedOrder:
    """Place ``request`` for ``user``: market, limit (``order_price``), stop (``stop_price``)
    or stop-limit (both); by ``quantity``, or for a market order by ``notional`` USD (the
    quantity is notional / price rounded down to the asset's step). ``origin`` says which API
    placed it, with which key.

    Validates (400, nothing stored) and fetches a fresh price (before any lock). An order
    that fills at that price (a stop whose stop is reached counts as triggered, and is
    stored as the stop it is, with its ``triggered_at``) fills now, in one statement
    (``orders.settlement``). One that does not rests with a hold (``gtc``), or ends CANCELLED
    (``ioc``/``fok``). Raises InvalidRequest, Conflict (client_order_id reused with other
    parameters), PriceUnavailable (no fresh price: transient, so nothing is stored and the
    client_order_id stays free for the retry), and OrderFailed wrapping InsufficientFunds,
    InsufficientAsset or BalanceLimitExceeded: those orders are stored FAILED with their
    answer, and nothing moves.
    """
    now = timezone.now()
    asset = tradable_asset(request.asset_id)
    request = dataclasses.replace(request, asset_id=asset.asset_id)
    validate_request(request, asset=asset, now=now)
    if request.client_order_id is not None:
        existing = replay_or_conflict(user_id=user.pk, request=request)
        if existing is not None:
            return PlacedOrder(existing, created=False)
    quantity = request.quantity
    if quantity is not None and request.kind != Order.Kind.MARKET:
        validate_value(quantity=quantity, price=request.order_price or request.stop_price)
    # No fresh price is a transient refusal (503 with Retry-After): it stores nothing, so the
    # same request, client_order_id and all, is placed once the price is back.
    quote = get_trade_quote(asset)
    model, version = fill_model_for_order(user_id=user.pk)
    if request.notional is not None:
        quantity = _notional_quantity(request, model=model, quote=quote, asset=asset)
    elif request.kind == Order.Kind.MARKET:
        validate_value(quantity=quantity, price=quote.price)

    order = request.to_order(
        user=user,
        asset=asset,
        quantity=quantity,
        **origin.fields(),
        created_at=now,
        expires_at=request.expires_at or (now + settings.DEFAULT_ORDER_TTL if request.may_rest else None),
    )
    _trigger_if_reached(order, price=quote.price, now=now)
    return _arrive(order, quote=quote, now=now, request=request, model=model, model_version=version)


def _notional_quantity(request: OrderRequest, *, model: fill_model.FillParams, quote: Quote, asset: Asset) -> Decimal:
    """A notional order's quantity, at the worst price ``model`` may fill it at (the ask plus
    the most slippage), so that a BUY never costs more than its notional (docs/DESIGN.md,
    "Fill model")."""
    worst = model.market_price(side=request.order_type, mid=quote.price, quantity=ZERO, volume=None)
    priced = quote.price if worst == quote.price else worst
    return quantity_for_notional(notional=request.notional, price=priced, asset=asset)


def side_price(model: fill_model.FillParams, *, order_type: str, mid: Decimal) -> Decimal:
    """The price an order of ``order_type`` meets: the ask for a BUY, the bid for a SELL
    (both the mid under a model without a spread)."""
    bid, ask = model.bid_ask(mid)
    return ask if order_type == Order.Type.BUY else bid


def _arrive(
    order: Order,
    *,
    quote: Quote,
    now: datetime,
    request: OrderRequest,
    model: fill_model.FillParams,
    model_version: datetime | None,
) -> PlacedOrder:
    """Fill, rest or end a new order under ``model`` (docs/DESIGN.md, "Fill model"): a limit
    is marketable when the ask (BUY) or the bid (SELL) crosses it."""
    if fills_at(order, side_price(model, order_type=order.order_type, mid=quote.price)):
        try:
            return _take_at_once(order, quote=quote, now=now, request=request, model=model, model_version=model_version)
        except OwnFillModel as found:  # priced under a model the account does not have: again, under its own
            if request.notional is not None:  # sized for the other model's worst price
                order.quantity = _notional_quantity(request, model=found.model, quote=quote, asset=order.asset)
            return _arrive(order, quote=quote, now=now, request=request, model=found.model, model_version=found.version)

    try:
        return _place_unfilled(order, request=request)
    except IntegrityError as error:
        # An order filled or refused on arrival is stored without the user lock, so it can
        # take the client_order_id between our check under the lock and our insert (2 in
        # 1,250 racing requests): answer as the replay or the conflict it is.
        if request.client_order_id is None or CLIENT_ORDER_ID_CONSTRAINT not in str(error):
            raise
        return _replay_after_losing_the_key(order, request=request, error=error)


def _take_at_once(
    order: Order,
    *,
    quote: Quote,
    now: datetime,
    request: OrderRequest,
    model: fill_model.FillParams,
    model_version: datetime | None,
) -> PlacedOrder:
    """A marketable order: filled whole, or (an ioc or fok limit the minute's volume cannot
    fill whole) its part filled and the rest cancelled (ioc), or nothing filled (fok).
    Raises OwnFillModel, with nothing written, when ``model`` is not the account's."""
    part = _immediate_part(order, model=model, quote=quote, now=now)
    if part is None:
        return _place_filled(order, quote=quote, now=now, request=request, model=model, model_version=model_version)
    if part and order.time_in_force == Order.TimeInForce.IOC:
        return _place_part_then_cancel(
            order, request=request, quote=quote, now=now, model=model, model_version=model_version, part=part
        )
    return _place_unfilled(order, request=request)  # fok, or nothing to fill: CANCELLED


def _immediate_part(order: Order, *, model: fill_model.FillParams, quote: Quote, now: datetime) -> Decimal | None:
    """What of a marketable ioc or fok limit order the minute's volume lets fill at once under
    a model with a participation limit (docs/DESIGN.md, "Fill model"); None when all of it
    fills (market orders always do: they take the price, not the queue)."""
    if model.fill_participation is None or order.order_price is None or order.time_in_force == Order.TimeInForce.GTC:
        return None
    minute = int(now.timestamp()) // 60
    key = f"{order.asset_id}:{order.order_type}:{order.order_price}:{order.quantity}:0:{minute}"
    part = model.fillable(remaining=order.quantity, volume=quote.volume, step=order.asset.step, key=key)
    return None if part >= order.quantity else part


def _place_part_then_cancel(
    order: Order,
    *,
    request: OrderRequest,
    quote: Quote,
    now: datetime,
    model: fill_model.FillParams,
    model_version: datetime | None,
    part: Decimal,
) -> PlacedOrder:
    """An ioc limit order of which only ``part`` fills at once: in one transaction under the
    user lock it is accepted with its hold, ``part`` fills (a taker's fill), and the rest is
    cancelled, its hold released: ``new``, ``partly_filled``, ``cancelled``. Raises
    OwnFillModel, with nothing written, when ``model`` is not the account's (this path is rare
    enough to read the model under the lock rather than check it in a statement)."""
    failure: DomainError | None = None
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=order.user_id)
        current, version = read_fill_model(user_id=order.user_id)
        if version != model_version:
            raise OwnFillModel(current, version)
        if order.client_order_id is not None:
            existing = replay_or_conflict(user_id=order.user_id, request=request)
            if existing is not None:
                return PlacedOrder(existing, created=False)
        try:
            _rest_locked(order=order, usd=usd)
        except (InsufficientFunds, InsufficientAsset) as error:
            failure = error
            _store_ended(order, status=Order.Status.FAILED, reason=error.message, error=error)
        else:
            fill_pending_order_locked(
                order=order, usd=usd, quote=quote, now=now, model=model, quantity=part, maker=False
            )
            reason = f"Filled {part} at once ({order.time_in_force}); the rest is cancelled."
            announce(_end_pending_locked(order, usd=usd, to_status=Order.Status.CANCELLED, reason=reason))
    if failure is not None:
        raise OrderFailed(failure, order)
    return PlacedOrder(order, created=True)


def _replay_after_losing_the_key(order: Order, *, request: OrderRequest, error: IntegrityError) -> PlacedOrder:
    """The answer for a request whose insert lost the client_order_id's unique index to a
    concurrent one: that order's replay, or Conflict."""
    existing = replay_or_conflict(user_id=order.user_id, request=request)
    if existing is None:  # the winner's row is gone: cannot happen, orders are never deleted
        raise error
    return PlacedOrder(existing, created=False)


def _place_unfilled(order: Order, *, request: OrderRequest) -> PlacedOrder:
    """Under the user lock: rest an order the price does not fill (or end an ioc/fok one),
    or store one it cannot hold for FAILED."""
    failure: DomainError | None = None
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=order.user_id)
        if order.client_order_id is not None:
            # Orders placed under this lock cannot race this check; one filled or refused on
            # arrival can (see place_order).
            existing = replay_or_conflict(user_id=order.user_id, request=request)
            if existing is not None:
                return PlacedOrder(existing, created=False)
        # No savepoint needed: every check below raises before its flow writes anything.
        try:
            if request.may_rest:
                _rest_locked(order=order, usd=usd)
            else:
                reason = f"Not filled at once ({order.time_in_force})."
                _store_ended(order, status=Order.Status.CANCELLED, reason=reason)
        except (InsufficientFunds, InsufficientAsset) as error:
            failure = error
            _store_ended(order, status=Order.Status.FAILED, reason=error.message, error=error)
    if failure is not None:
        raise OrderFailed(failure, order)
    return PlacedOrder(order, created=True)


def _place_filled(
    order: Order,
    *,
    quote: Quote,
    now: datetime,
    request: OrderRequest,
    model: fill_model.FillParams,
    model_version: datetime | None,
) -> PlacedOrder:
    """An order the market fills at once, in the one settlement statement of its side, which
    is its own transaction and takes the user lock itself. Refused, it is stored FAILED with
    its answer; nothing else moves."""
    execute = execute_buy_order if order.order_type == Order.Type.BUY else execute_sell_order
    try:
        try:
            with localcontext(EXACT):
                execute(order=order, quote=quote, now=now, model=model, model_version=model_version)
        except (InsufficientFunds, InsufficientAsset, BalanceLimitExceeded) as error:
            with transaction.atomic(durable=True):  # the order and its event: two statements
                _store_ended(order, status=Order.Status.FAILED, reason=error.message, error=error)
            raise OrderFailed(error, order) from None
        except DataError as error:
            if order.order_type != Order.Type.BUY:
                raise
            # The statement wrote nothing. The order's own amounts are capped before this, so
            # what overflowed is the holding: its quantity would pass the column's 20 digits.
            raise InvalidRequest(
                "The holding would grow past the largest quantity it can hold.",
                details={"quantity": ["The holding would exceed 20 digits before the point."]},
            ) from error
    except IntegrityError as error:
        # A concurrent request with the same client_order_id won the unique index; the
        # statement rolled back whole. Answer like a replay (or a conflict).
        if order.client_order_id is None or CLIENT_ORDER_ID_CONSTRAINT not in str(error):
            raise
        return _replay_after_losing_the_key(order, request=request, error=error)
    return PlacedOrder(as_stored(order), created=True)


def _rest_locked(*, order: Order, usd: UsdBalance) -> None:
    """Store an order the market has not filled, reserving what it may spend or sell, and
    announce it ``new``. The caller holds the user lock."""
    if order.order_type == Order.Type.BUY:
        hold = buy_hold(order)
        if usd.available < hold:
            raise InsufficientFunds(
                "Not enough available USD to hold for this order.",
                details={"available": usd.available, "required": hold},
            )
        order.held_amount = hold
        order.save(force_insert=True)
        change_hold_locked(balance=usd, held_change=hold)
    else:
        holding = asset_balance_for_update(user_id=order.user_id, asset_id=order.asset_id)
        available = holding.available_quantity if holding else ZERO
        require_unheld(available=available, quantity=order.quantity, message=f"Not enough {order.asset_id}.")
        order.save(force_insert=True)
        change_held_quantity_locked(holding=holding, change=order.quantity)
    announce(order_event(Event.NEW, order, at=order.created_at))


def _store_ended(order: Order, *, status: str, reason: str, error: DomainError | None = None) -> None:
    """Store an order that ends on arrival, in the caller's transaction: FAILED (it could not
    be filled or held: announced ``rejected``) or CANCELLED (ioc/fok not filled at once:
    ``new``, then ``cancelled``). Nothing else moves. A FAILED order keeps its ``error``'s
    code and details: a repeated client_order_id answers with them."""
    order.status = status
    order.failure_reason = reason[:255]
    if error is not None:
        order.failure_code = error.code
        order.failure_details = OrderFailed(error, order).details
    order.held_amount = ZERO
    order.executed_price = order.total_amount = order.filled_at = None
    order.updated_at = order.created_at
    order.save(force_insert=True)
    if status == Order.Status.FAILED:
        announce(order_event(Event.REJECTED, order, at=order.created_at))
    else:
        accepted = order_event(Event.NEW, order, at=order.created_at)
        accepted = dataclasses.replace(accepted, order={**accepted.order, "status": Order.Status.PENDING})
        announce(accepted, order_event(Event.CANCELLED, order, at=order.created_at))


# --- Replacing ----------------------------------------------------------------------


def replace_order(
    *,
    order: Order,
    changes: OrderChanges,
    origin: OrderOrigin | None = None,
    actor: AbstractBaseUser | None = None,
) -> Order:
    """Replace a PENDING order with a new one that takes ``changes`` and keeps the rest: in
    one transaction, the old order ends REPLACED with ``replaced_by``, the new one carries
    ``replaces``, and the hold moves from one to the other (the new order fills at once if
    the market allows, or ends CANCELLED if ioc/fok and not filled). ``origin`` of the new
    order: by default the old one's API, with no key. Price fetched before the locks; takes
    the user lock, then the holding (SELL), then swaps the old order's status. Raises
    InvalidRequest, PriceUnavailable, InsufficientFunds/InsufficientAsset (the new hold does
    not fit: nothing changes), Conflict (client_order_id taken) and OrderNoLongerPending (it
    was filled, cancelled or replaced first: 409). ``actor``: the back-office staff member
    replacing it for the user, recorded on the old order (the caller checks who may)."""
    given = changes.given()
    if not given:
        raise InvalidRequest("Nothing to replace.", details={"quantity": ["Give at least one field to change."]})
    if order.status != Order.Status.PENDING:
        raise OrderNoLongerPending(
            f"Only PENDING orders can be replaced; this one is {order.status}.",
            details={"order_id": str(order.pk), "status": order.status},
        )
    now = timezone.now()
    kept = OrderRequest(
        asset_id=order.asset_id,
        order_type=order.order_type,
        # A partly filled order keeps what filled; its successor is for what is left, by default.
        quantity=order.remaining_quantity,
        order_price=order.order_price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force,
    )
    request = dataclasses.replace(kept, **given)  # the client_order_id only when a new one is given
    validate_request(request, asset=order.asset, now=now)
    validate_value(quantity=request.quantity, price=request.order_price or request.stop_price)
    quote = get_trade_quote(order.asset)
    new = request.to_order(
        user_id=order.user_id,
        asset=order.asset,
        expires_at=order.expires_at if request.may_rest else None,
        # A stop-limit already triggered stays triggered unless its stop moves.
        triggered_at=order.triggered_at if request.stop_price == order.stop_price else None,
        replaces=order,
        **(origin or OrderOrigin(placed_via=order.placed_via)).fields(),
        created_at=now,
    )
    _trigger_if_reached(new, price=quote.price, now=now)
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=order.user_id)
        holding = None
        if order.order_type == Order.Type.SELL:
            holding = asset_balance_for_update(user_id=order.user_id, asset_id=order.asset_id)
        old = Order.objects.get(pk=order.pk)
        if old.status != Order.Status.PENDING:
            raise OrderNoLongerPending(
                f"The order was {old.status.lower()} first.", details={"order_id": str(old.pk), "status": old.status}
            )
        if old.filled_quantity != order.filled_quantity:  # a part filled since it was read: ask again
            raise OrderNoLongerPending(
                "Part of the order filled first.", details={"order_id": str(old.pk), "status": old.status}
            )
        if request.client_order_id is not None:
            _require_free_client_order_id(user_id=old.user_id, client_order_id=request.client_order_id)
        if new.order_type == Order.Type.BUY:
            new.held_amount = buy_hold(new)
            if usd.available + old.held_amount < new.held_amount:
                raise InsufficientFunds(
                    "Not enough available USD to hold for the new order.",
                    details={"available": usd.available + old.held_amount, "required": new.held_amount},
                )
        else:
            available = (holding.available_quantity if holding else ZERO) + old.remaining_quantity
            require_unheld(available=available, quantity=new.quantity, message=f"Not enough {new.asset_id}.")
        new.save(force_insert=True)
        replaced = {"replaced_by": new, "held_amount": ZERO, "updated_at": now}
        if actor is not None:
            replaced["actor"] = actor
        transition_pending(
            order_id=old.pk, to_status=Order.Status.REPLACED, **replaced
        )  # cannot miss: every transition of this user's orders holds the user lock we hold
        if new.order_type == Order.Type.BUY:
            change_hold_locked(balance=usd, held_change=new.held_amount - old.held_amount)
        else:
            change_held_quantity_locked(holding=holding, change=new.quantity - old.remaining_quantity)
        old.status = Order.Status.REPLACED
        for field, value in replaced.items():
            setattr(old, field, value)
        # The successor announces its own events after these: filled, or cancelled (ioc/fok).
        announce(order_event(Event.REPLACED, old, at=now), order_event(Event.NEW, new, at=now))
        _act_on_replacement_locked(new, usd=usd, quote=quote, now=now)
    order.status = Order.Status.REPLACED  # the caller's copy of the old order, as stored
    for field, value in replaced.items():
        setattr(order, field, value)
    new.refresh_from_db()
    return new


def _require_free_client_order_id(*, user_id: int, client_order_id: str) -> None:
    """Conflict unless no order holds ``client_order_id``, or only one refused for want of a
    price, which gives it up (``release_client_order_id``)."""
    holder = Order.objects.filter(user_id=user_id, client_order_id=client_order_id).first()
    if holder is None or (held_by_transient_refusal(holder) and release_client_order_id(holder)):
        return
    raise Conflict("client_order_id is already used.", details={"client_order_id": client_order_id})


def _act_on_replacement_locked(new: Order, *, usd: UsdBalance, quote: Quote, now: datetime) -> None:
    """The new order of a replace, stored PENDING with its hold: fill it if the market
    allows (under the account's fill model, read only when the mid crosses it: the ask or bid
    can cross only then; filled at once, it pays the taker's fee), or end it if it may not
    rest. The caller holds the user lock."""
    if fills_at(new, quote.price):
        model, _ = read_fill_model(user_id=new.user_id)
        if fills_at(new, side_price(model, order_type=new.order_type, mid=quote.price)):
            fill_pending_order_locked(order=new, usd=usd, quote=quote, now=now, model=model, maker=False)
            return
    if new.time_in_force != Order.TimeInForce.GTC:
        announce(_end_pending_locked(new, usd=usd, to_status=Order.Status.CANCELLED, reason="Not filled at once."))


# --- Cancelling and expiring ---------------------------------------------------------


def _end_pending_locked(
    order: Order,
    *,
    usd: UsdBalance,
    to_status: str,
    reason: str = "",
    code: str = "",
    actor=None,
    holding: AssetBalance | None = None,
) -> OrderEvent:
    """Move a PENDING order to CANCELLED, EXPIRED or FAILED by compare-and-swap and release
    its hold, recording ``actor`` (back-office staff) when given; the event it made, for the
    caller to announce in the same transaction (several in one statement). The caller holds the user
    lock, and for a SELL may pass its ``holding`` already locked. ``order`` is left as stored
    (its status and ``updated_at`` too), so a caller may answer with it without reading it
    again. Raises OrderNotCancellable if it was not PENDING."""
    if order.order_type == Order.Type.SELL and holding is None:  # the user, the holding, then the order
        holding = asset_balance_for_update(user_id=order.user_id, asset_id=order.asset_id)
    ended = {"held_amount": ZERO, "failure_reason": reason, "failure_code": code, "updated_at": timezone.now()}
    if actor is not None:
        ended["actor"] = actor
    if order.triggered_at is not None:  # a stop that triggered and could not fill says when
        ended["triggered_at"] = order.triggered_at
    if not transition_pending(order_id=order.pk, to_status=to_status, **ended):
        status = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
        raise OrderNotCancellable(
            f"Only PENDING orders can be cancelled; this one is {status}.",
            details={"order_id": str(order.pk), "status": status},
        )
    if order.order_type == Order.Type.BUY:
        change_hold_locked(balance=usd, held_change=-order.held_amount)
    else:  # what is still held: a partly filled SELL's fills released their part
        change_held_quantity_locked(holding=holding, change=-order.remaining_quantity)
    order.status = to_status
    for field, value in ended.items():
        setattr(order, field, value)
    return order_event(ENDED_EVENTS[to_status], order, at=ended["updated_at"])


# What a resting order's end announces.
ENDED_EVENTS = {
    Order.Status.CANCELLED: Event.CANCELLED,
    Order.Status.EXPIRED: Event.EXPIRED,
    Order.Status.FAILED: Event.REJECTED,
}


def _close_pending(*, order: Order, to_status: str, actor=None) -> Order:
    """Move a PENDING order to CANCELLED or EXPIRED and release its hold. Takes the owner's
    user lock, then the holding (SELL), then swaps the order's status. Raises
    OrderNotCancellable when it is no longer PENDING."""
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=order.user_id)
        fresh = Order.objects.select_related("asset").get(pk=order.pk)
        announce(_end_pending_locked(fresh, usd=usd, to_status=to_status, actor=actor))
    order.refresh_from_db()
    return order


def cancel_order(*, order: Order, actor: AbstractBaseUser | None = None) -> Order:
    """Cancel a PENDING order (owner or staff; the caller checks who may). ``actor``: the
    back-office staff member cancelling it for the user, recorded on the order. See
    _close_pending."""
    return _close_pending(order=order, to_status=Order.Status.CANCELLED, actor=actor)


def expire_order(*, order: Order) -> Order:
    return _close_pending(order=order, to_status=Order.Status.EXPIRED)


def cancel_all_orders(*, user: AbstractBaseUser, actor: AbstractBaseUser | None = None) -> list[Order]:
    """Cancel every PENDING order of ``user`` and release their holds, in one transaction
    under the user lock (then the holdings of the SELLs, by asset). Every transition of this
    user's orders takes the user lock, so the orders read under it are the ones cancelled,
    each by compare-and-swap, with ``actor`` (back-office staff acting for the user) recorded
    on each. Returns them, oldest first."""
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=user.pk)
        pending = list(
            Order.objects.select_related("asset")
            .filter(user_id=user.pk, status=Order.Status.PENDING)
            .order_by("created_at")
        )
        sold = [order.asset_id for order in pending if order.order_type == Order.Type.SELL]
        holdings = asset_balances_for_update(user_id=user.pk, asset_ids=sold)
        ended = []
        for order in pending:
            holding = holdings.get(order.asset_id) if order.order_type == Order.Type.SELL else None
            ended.append(
                _end_pending_locked(order, usd=usd, to_status=Order.Status.CANCELLED, actor=actor, holding=holding)
            )
        announce(*ended)
    return pending


# --- Closing positions ----------------------------------------------------------------


def close_position(
    *,
    user: AbstractBaseUser,
    asset_id: str,
    quantity: Decimal | None = None,
    percentage: Decimal | None = None,
    origin: OrderOrigin = API_ORIGIN,
) -> PlacedOrder:
    """Sell a holding at market: its whole available (unheld) quantity, or ``quantity`` of
    it, or ``percentage`` of it rounded down to the asset's step. Through ``place_order``, so
    it raises what that raises; PositionNotFound when nothing is held, InsufficientAsset when
    the quantity asked for (or all of it) is held by open orders."""
    if quantity is not None and percentage is not None:
        raise InvalidRequest(
            "Give quantity or percentage, not both.",
            details={"quantity": ["Not with percentage."], "percentage": ["Not with quantity."]},
        )
    asset = tradable_asset(asset_id.upper())
    holding = AssetBalance.objects.filter(user_id=user.pk, asset=asset, quantity__gt=0).first()
    if holding is None:
        raise PositionNotFound(f"No {asset.asset_id} position.", details={"asset_id": asset.asset_id})
    available = holding.available_quantity
    if percentage is not None:
        if not percentage.is_finite() or not ZERO < percentage <= 100:
            raise InvalidRequest("percentage is above 0 and at most 100.", details={"percentage": ["0 < p <= 100."]})
        quantity = EXACT.multiply(available, percentage / 100).quantize(asset.step, rounding=ROUND_DOWN)
    elif quantity is None:
        quantity = available
    if quantity <= 0:
        raise InsufficientAsset(
            f"Not enough unheld {asset.asset_id} to close.", details={"available": available, "required": quantity}
        )
    require_unheld(available=available, quantity=quantity, message=f"Not enough unheld {asset.asset_id} to close.")
    request = OrderRequest(asset_id=asset.asset_id, order_type=Order.Type.SELL, quantity=quantity)
    return place_order(user=user, request=request, origin=origin)


@dataclass(frozen=True)
class ClosedPosition:
    asset_id: str
    order: Order | None  # the market SELL (FAILED ones too), None if none was stored
    error: DomainError | None


def close_all_positions(
    *, user: AbstractBaseUser, cancel_orders: bool, origin: OrderOrigin = API_ORIGIN
) -> tuple[list[Order], list[ClosedPosition]]:
    """Sell every holding at market, one order and one transaction per asset, by asset; with
    ``cancel_orders``, after cancelling every open order (``cancel_all_orders``), so that what
    resting SELLs held is sold too. Returns the cancelled orders and, per asset, the SELL or
    the error that stopped it (one asset without a price, or all of it held, does not stop
    the others)."""
    cancelled = cancel_all_orders(user=user) if cancel_orders else []
    closed = []
    held = AssetBalance.objects.filter(user_id=user.pk, quantity__gt=0).order_by("asset_id")
    for asset_id in held.values_list("asset_id", flat=True):
        try:
            placed = close_position(user=user, asset_id=asset_id, origin=origin)
            closed.append(ClosedPosition(asset_id, placed.order, None))
        except DomainError as error:
            closed.append(ClosedPosition(asset_id, getattr(error, "order", None), error))
    return cancelled, closed


# --- The resting-order processor ----------------------------------------------------


@dataclass
class ProcessReport:
    filled: int = 0
    expired: int = 0
    skipped: int = 0  # lost a race, triggered without filling (stop-limit), or could not be filled
    failed: int = 0  # raised an error of its own: left PENDING for the next pass
    failures_logged: int = 0  # of those, how many this pass logged (see FailingOrders)


FAILING_ORDER_LOG_INTERVAL = timedelta(minutes=1)
MAX_FAILING_ORDERS = 10_000


@dataclass
class _Failing:
    since: datetime
    count: int
    logged_at: datetime


class FailingOrders:
    """The orders that raised an error of their own in process_orders (a value that overflows
    a column, a bug their data triggers), so that such an order, skipped on every pass, is
    not logged on every pass: its first failure is logged with the traceback, then one line
    at most every FAILING_ORDER_LOG_INTERVAL saying how often it failed since. (A poison
    order once wrote a 67-line traceback every 2 s, for as long as it stayed PENDING.)

    One per process_orders process, kept across passes. Its memory is bounded: an order is
    forgotten once it is no longer PENDING (``forget_settled``, after each pass), and at most
    MAX_FAILING_ORDERS are kept, the oldest forgotten first (logged again in full if it
    fails again)."""

    def __init__(self) -> None:
        self._orders: dict[object, _Failing] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def failed(self, order_id, error: BaseException) -> bool:
        """Record a failure of ``order_id`` (call it from the ``except`` block, for the
        traceback); True when it was logged."""
        now = timezone.now()
        known = self._orders.get(order_id)
        if known is None:
            if len(self._orders) >= MAX_FAILING_ORDERS:
                del self._orders[next(iter(self._orders))]
            self._orders[order_id] = _Failing(since=now, count=1, logged_at=now)
            logger.exception("process_orders: order %s could not be processed; skipped, it stays PENDING", order_id)
            return True
        known.count += 1
        if now - known.logged_at < FAILING_ORDER_LOG_INTERVAL:
            return False
        known.logged_at = now
        first_line = next(iter(str(error).strip().splitlines()), "")
        logger.warning(
            "process_orders: order %s failed %d times since %s (%s: %s); still skipped, it stays PENDING",
            order_id,
            known.count,
            known.since.isoformat(timespec="seconds"),
            error.__class__.__name__,
            first_line,
        )
        return True

    def forget_settled(self) -> None:
        """Forget the orders that are no longer PENDING (filled, cancelled, expired): one query."""
        if not self._orders:
            return
        pending = set(
            Order.objects.filter(pk__in=list(self._orders), status=Order.Status.PENDING).values_list("pk", flat=True)
        )
        self._orders = {order_id: known for order_id, known in self._orders.items() if order_id in pending}


def fill_resting_order(*, order_id, quote: Quote) -> bool:
    """Fill one resting order at ``quote`` if it is still PENDING and the price fills it: a
    limit crossed, a stop reached (marked triggered; a stop-limit then fills only where
    its limit is crossed, and otherwise rests as a limit order). A stop BUY the market
    gapped past its hold ends FAILED with its hold released. Returns True when it filled;
    False when it did not, or another worker or a cancel got there first."""
    walk = _Walk([order_id])
    walk.fill_next(quote=quote)
    return walk.filled


@dataclass
class _Walk:
    """process_orders' way down a list of crossed orders, oldest first: each transaction claims
    the next order no other process holds and that is still PENDING (a claim it loses costs
    one query, not a transaction: two processes on one list then skip each other's orders
    at the price of a query), and fills it. ``position`` is how far it got, ``claimed`` the
    order of the last transaction, ``filled`` whether that one filled."""

    order_ids: list
    position: int = 0
    claimed: object = None
    filled: bool = False

    @property
    def current(self):
        """The order the last transaction was at: claimed, or being claimed."""
        return self.claimed if self.claimed is not None else self.order_ids[max(self.position - 1, 0)]

    def fill_next(self, *, quote: Quote) -> None:
        self.claimed, self.filled = None, False
        with transaction.atomic(durable=True), localcontext(EXACT):
            while self.position < len(self.order_ids):
                order_id = self.order_ids[self.position]
                self.position += 1
                claimed = claim_pending_order(order_id=order_id)  # the claim and the user lock: one query
                if claimed is not None:
                    self.claimed = order_id
                    self.filled = _fill_claimed(*claimed, quote=quote)
                    return


def _fill_claimed(order: Order, usd: UsdBalance, account_model: AccountFillModel | None, *, quote: Quote) -> bool:
    """Fill a claimed order (its owner's user lock held) if the price fills it, under the
    account's fill model (``account_model``, None: the deployment's); see ``fill_resting_order``."""
    model = params_of(account_model)
    met = side_price(model, order_type=order.order_type, mid=quote.price)
    triggers = order.stop_price is not None and order.triggered_at is None
    if triggers and not stop_reached(order_type=order.order_type, stop_price=order.stop_price, price=quote.price):
        return False
    if not triggers and not fills_at(order, met):
        return False
    now = timezone.now()
    if triggers:
        order.triggered_at = now  # stored with the fill, or on its own below
        if not fills_at(order, met):  # a stop-limit now waiting for its limit
            trigger_pending(order_id=order.pk, at=now)
            return False
    quantity = _resting_fill_quantity(order, model=model, quote=quote, now=now)
    if not quantity:
        if triggers:  # a stop-limit that crossed in a minute with no volume to take: triggered still
            trigger_pending(order_id=order.pk, at=now)
        return False
    try:
        fill_pending_order_locked(order=order, usd=usd, quote=quote, now=now, model=model, quantity=quantity)
    except OrderNoLongerPending:
        return False  # a cancel or a replace got there first
    except (InsufficientFunds, BalanceLimitExceeded) as error:  # raised before the fill wrote anything
        # A stop BUY gapped past its hold, or proceeds that would take the balance past
        # MAX_USD_BALANCE: this order cannot fill, now or later; it ends FAILED, its hold
        # released, rather than stopping process_orders or being retried every pass.
        logger.warning("process_orders: order %s cannot be filled: %s", order.pk, error.message)
        failed = Order.Status.FAILED
        announce(_end_pending_locked(order, usd=usd, to_status=failed, reason=error.message, code=error.code))
        return False
    return True


def _resting_fill_quantity(order: Order, *, model: fill_model.FillParams, quote: Quote, now: datetime) -> Decimal:
    """How much of a crossed resting order fills now (docs/DESIGN.md, "Fill model"): all that
    is left, unless the model limits a resting limit order to its share of the minute's
    volume; then once a minute at most, and its share is drawn from the seed and what the order
    is (not its random id), so the same seed, prices and orders give the same fills."""
    remaining = order.remaining_quantity
    if model.fill_participation is None or order.order_price is None:
        return remaining
    minute = int(now.timestamp()) // 60
    if order.filled_quantity and int(order.updated_at.timestamp()) // 60 == minute:
        return ZERO  # it took its share of this minute already
    key = f"{order.asset_id}:{order.order_type}:{order.order_price}:{order.quantity}:{order.filled_quantity}:{minute}"
    step = get_asset(order.asset_id).step  # this process's recent read: no query
    return model.fillable(remaining=remaining, volume=quote.volume, step=step, key=key)


# The database itself is unreachable or restarting: no other order would fare better, so
# the pass ends and process_orders reconnects and backs off.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)


@contextmanager
def _one_order(order_id, report: ProcessReport, failing: FailingOrders):
    """Keep one order's failure from stopping everyone else's fills (``order_id``, or a
    function that says which order it was once it failed).

    A value that overflows a column (DataError), a constraint it breaks or a bug its data
    triggers is that order's problem: its own transaction has rolled back, so it is logged
    with its id (``failing`` says how often), stays PENDING, and the pass goes on. Catching
    every exception is deliberate here; only a lost database connection ends the pass.
    """
    try:
        yield
    except DATABASE_UNREACHABLE:
        raise
    except Exception as error:
        report.failed += 1
        report.failures_logged += failing.failed(order_id() if callable(order_id) else order_id, error)


def process_resting_orders(
    *, now: datetime | None = None, progress=None, failing: FailingOrders | None = None
) -> ProcessReport:
    """Expire PENDING orders past ``expires_at``, then fill (or trigger) those the market
    price crosses or reaches. ``failing`` remembers, across the passes of one process, the
    orders that raise errors of their own, so each is logged once a minute at most.

    Safe to run in several processes at once: every transition is a compare-and-swap on
    ``status = 'PENDING'`` taken under the owner's user lock, so an order is filled or
    expired exactly once. Prices are fetched once per run, before any lock.
    """
    now = now or timezone.now()
    failing = failing if failing is not None else FailingOrders()
    report = ProcessReport()
    expired = Order.objects.filter(status=Order.Status.PENDING, expires_at__lte=now).select_related("asset")
    for order in expired.iterator():
        with _one_order(order.order_id, report, failing):
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
            walk = _Walk(pending_order_ids_crossed(asset_id=asset.asset_id, order_type=order_type, price=quote.price))
            while walk.position < len(walk.order_ids):
                before, failed = walk.position, report.failed
                with _one_order(lambda walk=walk: walk.current, report, failing):
                    walk.fill_next(quote=quote)
                    report.filled += walk.filled
                report.skipped += walk.position - before - walk.filled - (report.failed - failed)
                if progress is not None:
                    progress(report)
    failing.forget_settled()
    return report


# --- Resetting the account ------------------------------------------------------------

RESET_ORDER_REASON = "Account reset."


@dataclass(frozen=True)
class AccountResetResult:
    reset: AccountReset
    created: bool  # False when a repeated client_reference returned the original reset


def reset_account(
    *,
    user: AbstractBaseUser,
    cash: Decimal | None = None,
    client_reference: str | None = None,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> AccountResetResult:
    """Start the user's paper account over with ``cash`` USD (default INITIAL_USD_BALANCE), in
    one transaction (docs/DESIGN.md, "Reset and exports"): every open order cancelled, its
    hold released and a ``canceled`` event announced; every holding taken out by a RESET asset
    row (no sale, no P&L); the cash set by a RESET cash row; an ``AccountReset`` recording it,
    from which the account's history starts over. API keys, tokens and settings stay.
    ``actor``: the back-office staff member resetting it for the user, with ``reason``.

    Takes the user lock, then every holding (one statement, asset order), then the orders
    (one compare-and-swap of them all): a fill, a cancel or process_orders racing it comes
    wholly before or wholly after. A repeated ``client_reference`` with the same cash returns
    the first reset and moves nothing. Raises InvalidRequest (cash not a balance the account
    may hold) and Conflict (client_reference used for another amount)."""
    cash = settings.INITIAL_USD_BALANCE if cash is None else cash
    validate_reset_cash(cash)
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd = usd_balance_for_update(user_id=user.pk)
        if client_reference is not None:
            existing = replay_reset_locked(user_id=user.pk, client_reference=client_reference, cash=cash)
            if existing is not None:
                return AccountResetResult(existing, created=False)
        holdings = held_asset_balances_for_update(user_id=user.pk)
        cancelled = _cancel_every_pending_locked(user_id=user.pk, actor=actor)
        released_quantities: dict[str, Decimal] = {}
        for order, _ in cancelled:
            if order.order_type == Order.Type.SELL:
                released = order.remaining_quantity
                released_quantities[order.asset_id] = released_quantities.get(order.asset_id, ZERO) + released
        reset = reset_balances_locked(
            usd=usd,
            holdings=holdings,
            cash=cash,
            released_hold=sum((held for _, held in cancelled), ZERO),
            released_quantities=released_quantities,
            cancelled_orders=[str(order.pk) for order, _ in cancelled],
            client_reference=client_reference,
            actor=actor,
            reason=reason.strip(),
        )
    return AccountResetResult(reset, created=True)


def _cancel_every_pending_locked(*, user_id: int, actor: AbstractBaseUser | None) -> list[tuple[Order, Decimal]]:
    """Cancel every PENDING order of the user in one statement and announce each ``canceled``;
    each order (left as stored) with the USD it held. The caller holds the user lock: every
    transition of the user's orders holds it too, so the orders read here are the ones swapped."""
    pending = list(Order.objects.filter(user_id=user_id, status=Order.Status.PENDING).order_by("created_at", "pk"))
    if not pending:
        return []
    now = timezone.now()
    ended = {"held_amount": ZERO, "failure_reason": RESET_ORDER_REASON, "failure_code": "", "updated_at": now}
    if actor is not None:
        ended["actor"] = actor
    swapped = transition_every_pending(
        order_ids=[order.pk for order in pending], to_status=Order.Status.CANCELLED, **ended
    )
    if swapped != len(pending):  # cannot happen (see above); if it did, roll back, never release a hold twice
        raise OrderNoLongerPending("An order changed while its owner's account was locked.")
    cancelled = []
    for order in pending:
        held = order.held_amount
        order.status = Order.Status.CANCELLED
        for field, value in ended.items():
            setattr(order, field, value)
        cancelled.append((order, held))
    announce(*(order_event(Event.CANCELLED, order, at=now) for order, _ in cancelled))
    return cancelled


# --- The account's fill model (docs/DESIGN.md, "Fill model") ---------------------------

_FILL_BOUNDS = {
    "spread_bps": (ZERO, fill_model.MAX_SPREAD_BPS, True),
    "volume_limit": (ZERO, Decimal(1), False),
    "price_impact": (ZERO, Decimal(1), True),
    "fill_participation": (ZERO, Decimal(1), False),
    "maker_fee_bps": (ZERO, fill_model.MAX_FEE_BPS, True),
    "taker_fee_bps": (ZERO, fill_model.MAX_FEE_BPS, True),
}
FILL_PARAMETERS = tuple(field.name for field in dataclasses.fields(fill_model.FillParams))


def set_account_fill_model(
    *, user: AbstractBaseUser, profile: str | None = None, actor: AbstractBaseUser | None = None, **changes
) -> AccountFillModel:
    """Set the model the account's next orders fill under: ``profile`` (ideal or realistic)
    starts from that profile's parameters, else from the account's model now; ``changes``
    (any of ``FILL_PARAMETERS``) then set each parameter on its own. The row's ``profile``
    says which profile the result is, or ``custom``. ``actor``: the back-office staff member
    setting it for the user. Orders already resting fill under the model in force when they
    fill. Raises InvalidRequest naming each field out of its bounds."""
    errors: dict[str, list[str]] = {}
    if profile is not None and profile not in fill_model.PROFILES_SETTABLE:
        errors["profile"] = [f"One of {', '.join(fill_model.PROFILES_SETTABLE)}."]
    unknown = set(changes) - set(FILL_PARAMETERS)
    for name in sorted(unknown):
        errors[name] = ["Unknown parameter."]
    for name, (low, high, inclusive) in _FILL_BOUNDS.items():
        value = changes.get(name)
        if value is None:
            continue
        if not value.is_finite() or value > high or value < low or (value == low and not inclusive):
            errors[name] = [f"From {low} ({'included' if inclusive else 'excluded'}) to {high}."]
    if "slippage" in changes and changes["slippage"] not in fill_model.SLIPPAGES:
        errors["slippage"] = [f"One of {', '.join(fill_model.SLIPPAGES)}."]
    seed = changes.get("seed")
    if seed is not None and not 0 <= seed <= fill_model.MAX_SEED:
        errors["seed"] = [f"From 0 to {fill_model.MAX_SEED}."]
    if errors:
        raise InvalidRequest("The fill model is not valid.", details=errors)
    with transaction.atomic(durable=True):
        current = AccountFillModel.objects.select_for_update().filter(user_id=user.pk).first()
        base = fill_model.PROFILES[profile] if profile is not None else params_of(current)
        params = dataclasses.replace(base, **changes)
        values = {**params.as_dict(), "profile": params.profile, "actor": actor}
        row, _ = AccountFillModel.objects.update_or_create(user_id=user.pk, defaults=values)
    remember_fill_model(row)
    return row
