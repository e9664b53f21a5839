"""The engine's flows, as the tests of the streams drive them: each announces its own events,
inside its own transaction."""

from __future__ import annotations

from decimal import Decimal

from orders.models import Order
from orders.services import OrderFailed, cancel_order, expire_order, place_order, replace_order
from orders.validation import OrderChanges, OrderOrigin, OrderRequest


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
    return order


def market_buy(user, *, quantity: str = "0.01", client_order_id=None) -> Order:
    order = place_order(
        user=user,
        request=OrderRequest(
            asset_id="BTC", order_type="BUY", quantity=Decimal(quantity), client_order_id=client_order_id
        ),
    ).order
    return order


def cancel(order: Order) -> Order:
    return cancel_order(order=order)


def expire(order: Order) -> Order:
    return expire_order(order=order)


def replace(order: Order, *, price: str) -> Order:
    return replace_order(order=order, changes=OrderChanges(order_price=Decimal(price)))


def rejected_buy(user, *, quantity: str) -> Order:
    try:
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal(quantity)))
    except OrderFailed as failed:
        return failed.order
    raise AssertionError("the order was not refused")
