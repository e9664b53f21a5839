"""What an order must be before anything is locked or stored (docs/DESIGN.md, "How an order flows"):
its asset, its shape (quantity or notional, prices, time in force, expiry) and its value.
Each check raises InvalidRequest (400) naming the field; none reads a lock."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import transaction

from accounts.models import ApiKey
from assets.models import Asset
from assets.selectors import get_asset
from core.exceptions import Conflict, DomainError, InvalidRequest, PriceUnavailable
from core.money import PRICE, QUANTITY, USD, decimal_places, plain, to_cents, value_of
from orders.lock_objects import release_client_order_id
from orders.models import Order, kind_of


@dataclass(frozen=True)
class OrderRequest:
    """An order as asked for, before it is priced: what ``place_order`` validates, and what a
    repeated client_order_id must match. Each field is named as the ``Order`` column it is
    stored in, so that ``replay_or_conflict`` compares every field there is: a field added here
    is compared without a line more."""

    asset_id: str
    order_type: str
    quantity: Decimal | None = None
    notional: Decimal | None = None
    order_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = Order.TimeInForce.GTC
    expires_at: datetime | None = None
    client_order_id: str | None = None

    @property
    def kind(self) -> str:
        return kind_of(order_price=self.order_price, stop_price=self.stop_price)

    @property
    def may_rest(self) -> bool:
        """A good-till-cancelled order with a price to wait for rests when not filled at once."""
        return self.kind != Order.Kind.MARKET and self.time_in_force == Order.TimeInForce.GTC

    def to_order(self, **fields) -> Order:
        """An unsaved order of this request; ``fields`` adds the rest (user, origin, times,
        links) or overrides (the quantity a notional buys, the default expiry)."""
        asked = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return Order(**{**asked, **fields})

    def differences_from(self, order: Order) -> list[str]:
        """The fields of this request that ``order``, stored for it earlier, does not match.
        What the engine chose for a field left out is no difference: the quantity a notional
        bought, the default expiry of an order that may rest."""
        differing = []
        for field in dataclasses.fields(self):
            asked, stored = getattr(self, field.name), getattr(order, field.name)
            if asked is None and field.name == "quantity":
                continue
            if asked is None and field.name == "expires_at" and self.may_rest:
                asked = order.created_at + settings.DEFAULT_ORDER_TTL
            if asked != stored:
                differing.append(field.name)
        return differing


@dataclass(frozen=True)
class OrderOrigin:
    """Where an order came from: which API placed it and the API key a program used (none for
    a token, a session or the back office). Stored on the order for support."""

    placed_via: str = Order.PlacedVia.API
    api_key: ApiKey | None = None

    def fields(self) -> dict:
        return {"placed_via": self.placed_via, "api_key": self.api_key}


# /api/v1 with no key recorded: the origin of an order unless its caller says otherwise.
API_ORIGIN = OrderOrigin()


@dataclass(frozen=True)
class OrderChanges:
    """What a replace changes; ``None`` keeps the replaced order's value."""

    quantity: Decimal | None = None
    order_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None

    def given(self) -> dict:
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {name: value for name, value in values.items() if value is not None}


def tradable_asset(asset_id: str) -> Asset:
    asset = get_asset(asset_id)
    if asset is None:
        raise InvalidRequest(f"Unknown asset {asset_id!r}.", details={"asset_id": ["Unknown asset."]})
    if not asset.is_active:
        raise InvalidRequest(f"{asset_id} is not tradable.", details={"asset_id": ["Asset is not active."]})
    return asset


def validate_request(request: OrderRequest, *, asset: Asset, now: datetime) -> None:
    """The checks that need no price: one of quantity and notional, values that fit their
    columns and the asset's step, notional only for market orders, expiry only for orders
    that may rest."""
    if request.order_type not in Order.Type.values:
        raise InvalidRequest("Unknown order type.", details={"order_type": ["BUY or SELL."]})
    if request.time_in_force not in Order.TimeInForce.values:
        raise InvalidRequest("Unknown time in force.", details={"time_in_force": ["gtc, ioc or fok."]})
    if (request.quantity is None) == (request.notional is None):
        raise InvalidRequest(
            "Give either quantity or notional.",
            details={"quantity": ["Give quantity or notional, not both."], "notional": ["Or this."]},
        )
    if request.quantity is not None:
        validate_quantity(request.quantity, asset=asset)
    if request.notional is not None:
        _validate_notional_amount(request)
    for field in ("order_price", "stop_price"):
        _validate_price(field, getattr(request, field))
    if request.expires_at is not None:
        if not request.may_rest:
            raise InvalidRequest(
                "Only orders that rest expire.",
                details={"expires_at": ["Only gtc limit, stop and stop-limit orders take expires_at."]},
            )
        if request.expires_at <= now:
            raise InvalidRequest("expires_at is in the past.", details={"expires_at": ["Must be in the future."]})


def validate_quantity(quantity: Decimal, *, asset: Asset, field: str = "quantity") -> None:
    if not quantity.is_finite() or quantity <= 0:
        raise InvalidRequest("Quantity must be positive.", details={field: ["Must be positive."]})
    if decimal_places(quantity) > asset.quantity_decimals:
        raise InvalidRequest(
            f"{asset.asset_id} quantities have at most {asset.quantity_decimals} decimals.",
            details={field: [f"At most {asset.quantity_decimals} decimal places."]},
        )
    # A quantity with more integer digits than the column holds would be refused only when
    # storing the order, as a 500 instead of a 400.
    if not QUANTITY.fits_integer_part(quantity):
        raise InvalidRequest(
            "Quantity is too large.", details={field: [f"At most {QUANTITY.integer_digits} digits before the point."]}
        )


def _validate_notional_amount(request: OrderRequest) -> None:
    notional = request.notional
    if request.kind != Order.Kind.MARKET:
        raise InvalidRequest(
            "Only market orders take a notional.", details={"notional": ["Market orders only: no order or stop price."]}
        )
    if not notional.is_finite() or notional <= 0 or not USD.fits(notional):
        raise InvalidRequest(
            "notional is a positive USD amount in cents.",
            details={"notional": [f"Positive, at most {USD.decimals} decimals."]},
        )
    if notional < settings.MIN_ORDER_NOTIONAL:
        raise InvalidRequest(
            f"Orders must be worth at least {settings.MIN_ORDER_NOTIONAL} USD.",
            details={"notional": [f"Below {settings.MIN_ORDER_NOTIONAL} USD."]},
        )
    _validate_at_most_a_balance(notional, field="notional")


def _validate_price(field: str, price: Decimal | None) -> None:
    # A price finer than the column would be rounded by PostgreSQL after its hold was
    # computed from the unrounded one.
    if price is None:
        return
    if not price.is_finite() or price <= 0:
        raise InvalidRequest(f"{field} must be positive.", details={field: ["Must be positive."]})
    if not PRICE.fits(price):
        raise InvalidRequest(
            f"{field} does not fit {PRICE.integer_digits} digits before and {PRICE.decimals} after the point.",
            details={
                field: [f"At most {PRICE.decimals} decimal places and {PRICE.integer_digits} digits before the point."]
            },
        )


def validate_value(*, quantity: Decimal, price: Decimal, field: str = "quantity") -> None:
    """The order is worth at least MIN_ORDER_NOTIONAL and at most MAX_USD_BALANCE at ``price``."""
    value = value_of(quantity, price)
    if value < settings.MIN_ORDER_NOTIONAL:
        raise InvalidRequest(
            f"Orders must be worth at least {settings.MIN_ORDER_NOTIONAL} USD.",
            details={field: [f"Order value {to_cents(value)} is below {settings.MIN_ORDER_NOTIONAL} USD."]},
        )
    _validate_at_most_a_balance(value, field=field)


def _validate_at_most_a_balance(value: Decimal, *, field: str) -> None:
    # No order may be worth more than a balance may hold: this keeps every cost, hold and
    # proceeds far inside the USD column (a market BUY of 20000000000000 BTC was a 500).
    if value > settings.MAX_USD_BALANCE:
        raise InvalidRequest(
            f"Orders may be worth at most {settings.MAX_USD_BALANCE} USD.",
            details={field: [f"Order value is above {settings.MAX_USD_BALANCE} USD (MAX_USD_BALANCE)."]},
        )


def quantity_for_notional(*, notional: Decimal, price: Decimal, asset: Asset) -> Decimal:
    """notional / price rounded DOWN to the asset's step, so that quantity x price never
    exceeds the notional (and a BUY's cost, rounded up to the cent, never does either: the
    notional is a whole number of cents). InvalidRequest when not even one step fits."""
    step = asset.step
    quantity = (notional / price).quantize(step, rounding=ROUND_DOWN) if price > 0 else Decimal(0)
    if quantity <= 0:
        raise InvalidRequest(
            f"{to_cents(notional)} USD buys less than one step of {asset.asset_id}.",
            details={"notional": [f"Less than {plain(step)} {asset.asset_id} at {plain(price)}."]},
        )
    validate_value(quantity=quantity, price=price, field="notional")
    return quantity


def held_by_transient_refusal(order: Order) -> bool:
    """An order stored FAILED for want of a price (before such refusals stopped storing
    anything): it answered a 503, which a retry must not replay."""
    return order.status == Order.Status.FAILED and order.failure_code == PriceUnavailable.code


def replay_or_conflict(*, user_id: int, request: OrderRequest) -> Order | None:
    """The original order for a repeated client_order_id, or Conflict if its parameters differ.
    An order that FAILED on arrival is answered as it was the first time: its stored error's
    code, message and details, so a 422 replays as such. A transient refusal (503) stores no
    order, so it never replays: the retry is placed (docs/DESIGN.md, "How an order flows")."""
    client_order_id = request.client_order_id
    existing = Order.objects.filter(user_id=user_id, client_order_id=client_order_id).first()
    if existing is not None and held_by_transient_refusal(existing):
        with transaction.atomic():
            release_client_order_id(existing)
        existing = None
    if existing is None:
        return None
    if request.differences_from(existing):
        raise Conflict(
            "client_order_id was already used for a different order.",
            details={"client_order_id": client_order_id, "order_id": str(existing.order_id)},
        )
    # failure_details holds the answer of an order refused on arrival (never empty: it names
    # the order). One that rested first (201) and failed later in process_orders has none:
    # its replay is the order, as for any order that rested.
    if existing.status == Order.Status.FAILED and existing.failure_code and existing.failure_details:
        failure = DomainError(existing.failure_reason, details=existing.failure_details)
        failure.code = existing.failure_code
        raise failure
    return existing
