"""The engine's flows, each followed by the events it announces (the engine will announce
them inside its own transaction; here each goes in a committed transaction of its own,
right after the flow)."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from balances.models import AssetBalance, AssetTransaction
from orders.events import Event, announce, order_event
from orders.models import Order
from orders.services import OrderFailed, cancel_order, expire_order, place_order, replace_order
from orders.validation import OrderChanges, OrderOrigin, OrderRequest


def _announce(*events) -> None:
    with transaction.atomic():
        announce(*events)


def rest_limit_buy(user, *, price: str = "40000", quantity: str = "0.01", client_order_id=None) -> Order:
    order = place_order(
        user=user,
        request=OrderRequest(
            asset_id="BTC",
            order_type="BUY",
            quantity=Decimal(quantity),
            order_price=Decimal(price),
            client_order_id=client_order_id,
        ),
        origin=OrderOrigin(placed_via=Order.PlacedVia.ALPACA),
    ).order
    _announce(order_event(Event.NEW, order, at=order.created_at))
    return order


def fill_event(order: Order):
    holding = AssetBalance.objects.get(user_id=order.user_id, asset_id=order.asset_id)
    execution = AssetTransaction.objects.get(order=order)
    fill = (order.quantity, order.executed_price, holding.quantity, execution.pk)
    return order_event(Event.FILL, order, at=order.filled_at, fill=fill)


def market_buy(user, *, quantity: str = "0.01", client_order_id=None) -> Order:
    order = place_order(
        user=user,
        request=OrderRequest(
            asset_id="BTC", order_type="BUY", quantity=Decimal(quantity), client_order_id=client_order_id
        ),
    ).order
    _announce(fill_event(order))
    return order


def cancel(order: Order) -> Order:
    order = cancel_order(order=order)
    _announce(order_event(Event.CANCELED, order, at=order.updated_at))
    return order


def expire(order: Order) -> Order:
    order = expire_order(order=order)
    _announce(order_event(Event.EXPIRED, order, at=order.updated_at))
    return order


def replace(order: Order, *, price: str) -> Order:
    new = replace_order(order=order, changes=OrderChanges(order_price=Decimal(price)))
    old = Order.objects.get(pk=order.pk)
    _announce(order_event(Event.REPLACED, old, at=old.updated_at), order_event(Event.NEW, new, at=new.created_at))
    return new


def rejected_buy(user, *, quantity: str) -> Order:
    try:
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal(quantity)))
    except OrderFailed as failed:
        _announce(order_event(Event.REJECTED, failed.order, at=timezone.now()))
        return failed.order
    raise AssertionError("the order was not refused")
