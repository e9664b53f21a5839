"""What every Alpaca endpoint shares: Alpaca's key headers, Alpaca's error shape, JSON only.

Not in /api/v1/schema/ (``schema = None``): these shapes are Alpaca's, documented by Alpaca's
API reference and alpaca-py's models, and the README says so.
"""

from __future__ import annotations

from datetime import datetime

from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from alpaca_compat import errors
from alpaca_compat.auth import ApiKeyAuthentication
from alpaca_compat.symbols import asset_id_for
from assets.models import Asset
from assets.selectors import get_asset
from core.api.defaults import DecimalJSONParser
from core.api.throttles import UserAndOrderThrottle


class AlpacaView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    parser_classes = [DecimalJSONParser]
    # THROTTLE_USER_RATE on every request, THROTTLE_ORDER_RATE on top for the methods a view
    # lists in order_placing_methods (those that place, replace, cancel or close).
    throttle_classes = [UserAndOrderThrottle]
    throttle_scope = "orders"
    order_placing_methods: tuple[str, ...] = ()
    schema = None

    def get_exception_handler(self):
        return errors.exception_handler

    def parse(self, serializer_class, data) -> dict:
        """Validated input; fields Alpaca does not define are refused, never ignored."""
        serializer = serializer_class(data=data)
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise errors.invalid(f"unknown field(s): {', '.join(unknown)}")
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def query(self, serializer_class) -> dict:
        return self.parse(serializer_class, self.request.query_params.dict())


def resolve_asset(symbol: str, *, missing) -> Asset:
    """The asset ``symbol`` names (``BTC/USD``, ``BTCUSD`` or its UUID), or ``missing(symbol)``."""
    asset_id = asset_id_for(symbol)
    asset = get_asset(asset_id) if asset_id else None
    if asset is None:
        raise missing(symbol)
    return asset


def comma_list(value: str) -> list[str]:
    return [part for part in (piece.strip() for piece in value.split(",")) if part]


class Timestamp(serializers.DateTimeField):
    """RFC 3339 timestamps as Alpaca takes them, also a bare date (the start of that day, UTC)."""

    def to_internal_value(self, value) -> datetime:
        if isinstance(value, str) and len(value) == 10:
            value = f"{value}T00:00:00Z"
        return super().to_internal_value(value)
