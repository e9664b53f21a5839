"""What every Alpaca endpoint shares: Alpaca's key headers, Alpaca's error shape, JSON only.

Not in /api/v1/schema/ (``schema = None``): these shapes are Alpaca's, documented by Alpaca's
API reference and alpaca-py's models, and the README says so.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from alpaca_compat import errors
from alpaca_compat.auth import ApiKeyAuthentication
from alpaca_compat.symbols import asset_id_for
from assets.models import Asset
from assets.selectors import get_asset
from balances.history import parse_activity_id
from core.api.defaults import DecimalJSONParser
from core.api.throttles import UserAndOrderThrottle
from core.api.times import InvalidTime, parse_day, parse_instant
from core.exceptions import InvalidRequest

# --- Input as Alpaca's clients send it, read as strictly as /api/v1 reads its own ----------


# How Python (alpaca-py's json.dumps of a float) and JavaScript write a small number: one
# digit, a fraction, a negative exponent (0.00005 is "5e-05").
_SMALL_FLOAT = re.compile(r"-?[1-9](?:\.\d{1,17})?[eE]-\d{1,3}", re.ASCII)


class AlpacaJSONParser(DecimalJSONParser):
    """``core.api.defaults.DecimalJSONParser`` (numbers straight to Decimal, no NaN or Infinity,
    no exponent), with one allowance for Alpaca's SDK: alpaca-py's order requests hold floats and
    ``json.dumps`` writes one below 0.0001 with an exponent (``qty=0.00005`` arrives as
    ``5e-05``), which Alpaca takes. Such a number is read exactly as written; any other exponent
    is refused, and the fields then check the digits against the column as for /api/v1.
    Strings follow /api/v1's grammar unchanged (``core.api.fields``)."""

    @staticmethod
    def read_number(literal: str) -> Decimal:
        if ("e" in literal or "E" in literal) and _SMALL_FLOAT.fullmatch(literal) is not None:
            return Decimal(literal)
        return DecimalJSONParser.read_number(literal)


class AlpacaView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    parser_classes = [AlpacaJSONParser]
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
        if not isinstance(data, dict):
            raise errors.invalid("the request body must be a JSON object")
        serializer = serializer_class(data=data)
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise errors.invalid(f"unknown field(s): {', '.join(unknown)}")
        if not serializer.is_valid():
            raise errors.invalid(_sentences(serializer, data))
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


def _sentences(serializer, data: dict) -> str:
    """The serializer's errors as Alpaca words them: ``side must be buy or sell, not "BUY"`` for a
    value outside a field's choices, ``qty: <what is wrong>`` otherwise, clauses joined by "; "."""
    detail = {}
    for name, messages in serializer.errors.items():
        field = serializer.fields.get(name)
        codes = [getattr(message, "code", None) for message in messages] if isinstance(messages, list) else []
        if isinstance(field, serializers.ChoiceField) and "invalid_choice" in codes:
            choices = [str(choice) for choice in field.choices]
            accepted = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
            detail[name] = [f'{name} must be {accepted}, not "{data.get(name)}"']
        else:
            detail[name] = messages
    return errors.validation_message(detail)


class Timestamp(serializers.DateTimeField):
    """A time in a query as Alpaca takes it (RFC 3339, or a bare date: that day's start in UTC),
    read by ``core.api.times``; malformed or out of range is a 400 in Alpaca's shape."""

    def to_internal_value(self, value) -> datetime:
        try:
            return parse_instant(value)
        except InvalidTime as error:
            raise errors.bad_request(f"invalid {self.field_name}: {_lower_first(str(error))}") from None


class Day(serializers.DateField):
    """A date in a query (``YYYY-MM-DD``), read by ``core.api.times``; 400 when malformed or
    out of range."""

    def to_internal_value(self, value) -> date:
        try:
            return parse_day(value)
        except InvalidTime as error:
            raise errors.bad_request(f"invalid {self.field_name}: {_lower_first(str(error))}") from None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


class ActivityPageToken(serializers.CharField):
    """An activity's id (the previous page's last activity carries it); 400 otherwise."""

    def to_internal_value(self, value) -> str:
        try:
            parse_activity_id(value)
        except (InvalidRequest, TypeError):
            raise errors.bad_request("invalid page_token") from None
        return value
