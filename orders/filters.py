"""The one filter of order lists, under its own names: /api/v1/orders/ takes them as they are,
and /v2/orders translates Alpaca's to them (alpaca_compat.trading). Applied by
``orders.selectors.get_orders``."""

from __future__ import annotations

from django_filters import rest_framework as filters

from core.api.filters import EnumFilter, TimestampFilter
from orders.models import KIND_FILTERS, PARTIALLY_FILLED, Order

OPEN, CLOSED = "open", "closed"
NEWEST_FIRST, OLDEST_FIRST = "desc", "asc"


def asset_id_list(value: str) -> list[str]:
    """``BTC,eth`` -> ``["BTC", "ETH"]``: asset ids of a comma list, upper case, sorted, once each."""
    return sorted({part.strip().upper() for part in value.split(",") if part.strip()})


class OrderFilter(filters.FilterSet):
    asset_id = filters.CharFilter(method="filter_asset", help_text="One asset or a comma list: BTC,ETH.")
    status = EnumFilter(
        choices=[
            (OPEN, "open: PENDING and PARTIALLY_FILLED"),
            (CLOSED, "closed: every other status"),
            *Order.Status.choices,
            (PARTIALLY_FILLED, "open, part of it filled"),
        ],
        method="filter_status",
    )
    order_type = EnumFilter(choices=Order.Type.choices)
    kind = EnumFilter(choices=Order.Kind.choices, method="filter_kind")
    client_order_id = filters.CharFilter()
    after = TimestampFilter(field_name="created_at", lookup_expr="gt", help_text="Created after (ISO 8601).")
    until = TimestampFilter(field_name="created_at", lookup_expr="lte", help_text="Created at or before.")
    before = TimestampFilter(field_name="created_at", lookup_expr="lt", help_text="Created before.")
    direction = EnumFilter(
        choices=[(NEWEST_FIRST, "newest first"), (OLDEST_FIRST, "oldest first")], method="filter_direction"
    )

    class Meta:
        model = Order
        fields = [
            "asset_id",
            "status",
            "order_type",
            "kind",
            "client_order_id",
            "after",
            "until",
            "before",
            "direction",
        ]

    def filter_asset(self, queryset, name, value):
        asset_ids = asset_id_list(value)
        if len(asset_ids) == 1:
            return queryset.filter(asset_id=asset_ids[0])
        return queryset.filter(asset_id__in=asset_ids)  # none for a list that names no asset

    def filter_status(self, queryset, name, value):
        if value == OPEN:
            return queryset.filter(status=Order.Status.PENDING)
        if value == CLOSED:
            return queryset.exclude(status=Order.Status.PENDING)
        # A partly filled order is stored PENDING and shown PARTIALLY_FILLED (docs/DESIGN.md,
        # "Fill model"): each status filters what it shows.
        if value == PARTIALLY_FILLED:
            return queryset.filter(status=Order.Status.PENDING, filled_quantity__gt=0)
        if value == Order.Status.PENDING:
            return queryset.filter(status=Order.Status.PENDING, filled_quantity=0)
        return queryset.filter(status=value)

    def filter_kind(self, queryset, name, value):
        return queryset.filter(KIND_FILTERS[value])

    def filter_direction(self, queryset, name, value):
        if value == OLDEST_FIRST:
            return queryset.order_by("created_at", "order_id")
        return queryset.order_by("-created_at", "-order_id")
