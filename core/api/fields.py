"""The fields every API serializer is built from, for input and output alike.

Numbers (docs/DESIGN.md, "Input" and "Money and precision"):
- In: a JSON string or number of ASCII digits with one optional point and an optional sign.
  No exponent, no underscore (``"1_000"``, which ``Decimal()`` takes), no other script's
  digits (Arabic-Indic or full-width, which ``Decimal()`` takes too), no spaces, no NaN or infinity;
  at most the column's digits, so nothing that would not fit its column reaches a service.
- Out: USD amounts with exactly two decimals (``"633.90"``); quantities and prices at their
  column's precision without trailing zeros (``"0.01"``, ``"63389.3"``, ``"50000"``).

Each field's ``to_representation`` is cheap on purpose (an f-string, no decimal context, no
time-zone lookup): ``ReadSerializer`` calls them for every value of every row.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal

from django.utils import timezone as dj_timezone
from rest_framework import serializers

from core.api.times import InvalidTime, parse_instant
from core.money import PRICE, QUANTITY, USD, Precision

# re.ASCII: \d is [0-9] only (without it, it also matches Arabic-Indic and full-width digits).
STRICT_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z", re.ASCII)
STRICT_INTEGER = re.compile(r"[+-]?\d+\Z", re.ASCII)
NOT_A_PLAIN_NUMBER = (
    "Write a plain decimal number: ASCII digits with one optional point and sign "
    "(no exponent, separators, spaces or other digits)."
)
NOT_A_PLAIN_INTEGER = "Write a whole number in ASCII digits (no point, separators, spaces or other digits)."


class StrictDecimalField(serializers.DecimalField):
    """A decimal in and out, strictly (see the module docstring). ``trim`` drops trailing zeros
    in answers (quantities, prices); without it the column's places are always written (USD)."""

    default_error_messages = {"not_plain": NOT_A_PLAIN_NUMBER}

    def __init__(self, precision: Precision, *, trim: bool, **kwargs) -> None:
        self.trim = trim
        super().__init__(max_digits=precision.max_digits, decimal_places=precision.decimals, **kwargs)

    def to_internal_value(self, data):
        # bool is an int in Python: true would be 1.
        if isinstance(data, bool) or not isinstance(data, (str, int, Decimal)):
            self.fail("invalid")
        if isinstance(data, str) and not STRICT_NUMBER.match(data):
            self.fail("not_plain")
        # JSON numbers arrive as int or Decimal from core.api.defaults.DecimalJSONParser, which
        # refuses exponents; DRF then checks the digits against the column.
        return super().to_internal_value(data)

    def to_representation(self, value) -> str:
        text = f"{value:.{self.decimal_places}f}"
        if self.trim and "." in text:
            text = text.rstrip("0").rstrip(".")
        return text


def UsdField(**kwargs) -> StrictDecimalField:
    """USD: cents, written with exactly two decimals."""
    return StrictDecimalField(USD, trim=False, **kwargs)


def QuantityField(**kwargs) -> StrictDecimalField:
    """An asset quantity: up to 18 decimals, written without trailing zeros."""
    return StrictDecimalField(QUANTITY, trim=True, **kwargs)


def PriceField(**kwargs) -> StrictDecimalField:
    """A USD price per unit: up to 12 decimals, written without trailing zeros."""
    return StrictDecimalField(PRICE, trim=True, **kwargs)


def PercentField(**kwargs) -> StrictDecimalField:
    """A percentage with two decimals, like USD."""
    return StrictDecimalField(USD, trim=False, **kwargs)


class EnumField(serializers.ChoiceField):
    """One of a TextChoices' values, taken in any case (``"buy"``, ``"GTC"``) and answered as
    declared (statuses and sides in upper case, ``gtc`` and ``stop_limit`` in lower case)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = canonical_choice(self.choice_strings_to_values, data)
        return super().to_internal_value(data)

    def to_representation(self, value):
        return value


class EnumValueField(serializers.ChoiceField):
    """One of a plain ``enum.Enum``'s values, exactly as declared (``1Min``, ``1W``), read as
    the member."""

    def __init__(self, enum_class: type[enum.Enum], **kwargs) -> None:
        self.enum_class = enum_class
        super().__init__(choices=[member.value for member in enum_class], **kwargs)

    def to_internal_value(self, data):
        return self.enum_class(super().to_internal_value(data))


def canonical_choice(choices, value: str):
    """The declared choice that ``value`` names in any case, or ``value`` unchanged."""
    wanted = value.lower()
    return next((choice for choice in choices if str(choice).lower() == wanted), value)


class TimestampField(serializers.DateTimeField):
    """ISO 8601 in UTC (``...Z``), as DRF writes it, without DRF's per-value lookup of the
    active time zone (the project never activates one)."""

    def to_representation(self, value) -> str:
        text = value.astimezone(dj_timezone.get_default_timezone()).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text


class StrictIntegerField(serializers.IntegerField):
    """A whole number, in the grammar of ``StrictDecimalField`` without the point: DRF's own
    takes whatever ``int()`` does (``"1_0"``, ``" 12 "``, Arabic-Indic digits) and ``"1.0"``."""

    default_error_messages = {"not_plain": NOT_A_PLAIN_INTEGER}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        if isinstance(data, str) and not STRICT_INTEGER.match(data):
            self.fail("not_plain")
        return super().to_internal_value(data)


class InstantField(serializers.DateTimeField):
    """A time in a query or body, read by ``core.api.times.parse_instant``: ISO 8601 in ASCII
    digits, UTC unless it says otherwise, inside the range every endpoint can count from."""

    def to_internal_value(self, value):
        try:
            return parse_instant(value)
        except InvalidTime as error:
            raise serializers.ValidationError(str(error), code="invalid") from None
