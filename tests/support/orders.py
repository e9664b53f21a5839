"""Placing orders in a test, through the engine's one entry point."""

from __future__ import annotations

from decimal import Decimal

from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest


def place_btc_order(user, order_type: str, quantity: str | None = None, **extra) -> Order:
    """The BTC order ``user`` placed, as stored: ``place_btc_order(user, "BUY", "0.01", order_price=...)``."""
    size = {"quantity": Decimal(quantity)} if quantity is not None else {}
    request = OrderRequest(asset_id="BTC", order_type=order_type, **size, **extra)
    return place_order(user=user, request=request).order
