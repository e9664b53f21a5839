"""Reads of orders. The two query shapes of the original design keep their names."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from orders.models import Order


def get_orders_by_user(*, user: AbstractBaseUser) -> QuerySet[Order]:
    """All of a user's orders, newest first (index order_user_newest)."""
    return Order.objects.filter(user=user).order_by("-created_at")


def get_orders_by_user_and_asset(*, user: AbstractBaseUser, asset_id: str) -> QuerySet[Order]:
    """A user's orders for one asset, newest first (index order_user_asset_newest)."""
    return Order.objects.filter(user=user, asset_id=asset_id).order_by("-created_at")


def get_order_for_user(*, user: AbstractBaseUser, order_id) -> Order | None:
    """One order if ``user`` owns it (staff may see any); None otherwise, so the API answers 404."""
    try:
        order_id = uuid.UUID(str(order_id))
    except ValueError:
        return None
    queryset = Order.objects.select_related("asset", "user")
    if not user.is_staff:
        queryset = queryset.filter(user=user)
    return queryset.filter(pk=order_id).first()
