"""Precisions and rounding for money and quantities (docs/DESIGN.md, "Money and precision").

Rounding happens only at boundaries and only through these helpers: a buy costs the
quantity times the price rounded UP to the cent, a sell pays it rounded DOWN, so the house
never pays out a fraction of a cent it did not receive.
"""

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal
from functools import cached_property

from django.db import models


@dataclass(frozen=True)
class Precision:
    """A kind of number's ``numeric(max_digits, decimals)``: its columns, API and form
    fields, the checks that keep a value inside the column and their messages are all built
    from one of the three below, so a precision changes in one line (and a migration)."""

    max_digits: int
    decimals: int

    @property
    def integer_digits(self) -> int:
        return self.max_digits - self.decimals

    @cached_property  # quantizes every fill's average price: made once, not per call
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)

    @property
    def sql_type(self) -> str:
        return f"numeric({self.max_digits}, {self.decimals})"

    def fits_integer_part(self, value: Decimal) -> bool:
        return value.adjusted() < self.integer_digits

    def fits(self, value: Decimal) -> bool:
        """The column holds ``value`` as it is: PostgreSQL would round more decimals
        silently, and refuse more integer digits with an error."""
        return decimal_places(value) <= self.decimals and self.fits_integer_part(value)


QUANTITY = Precision(max_digits=38, decimals=18)
PRICE = Precision(max_digits=30, decimals=12)
USD = Precision(max_digits=20, decimals=2)

# Quantities have up to 38 significant digits and quantity x price up to 68, but Decimal's
# default context keeps 28 and rounds silently, before to_cents_up/down see the value
# (10000000000.000000000000000001 x 0.0000000001 cost 1.00 instead of 1.01; adding
# 10000000000.000000000000000001 to 0 lost its last digit). Arithmetic on quantities and on
# what they are worth runs in this context, where it is exact.
EXACT = Context(prec=QUANTITY.max_digits + PRICE.max_digits + 2)

CENT = USD.step
ZERO = Decimal("0")


def value_of(quantity: Decimal, price: Decimal) -> Decimal:
    """quantity x price, exact (never rounded by the decimal context)."""
    return EXACT.multiply(quantity, price)


def to_cents_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_UP)


def to_cents_down(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def to_price(value: Decimal) -> Decimal:
    """A price or average price at the stored precision (12 places), rounded half-even."""
    return value.quantize(PRICE.step)


def decimal_places(value: Decimal) -> int:
    """How many digits a decimal has after the point, ignoring trailing zeros (1.50 -> 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def plain(value: Decimal) -> str:
    """A decimal without trailing zeros and never in exponent form: 0.010000 -> "0.01",
    1E+1 -> "10". How quantities and prices are written for people."""
    return format(value.normalize(), "f")


def to_cents(value: Decimal) -> Decimal:
    """Round half-even to the cent: for reported figures (P&L), never for what moves money."""
    return value.quantize(CENT)


# --- Model fields at these precisions: every money or quantity column is declared through one.


def usd_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=USD.max_digits, decimal_places=USD.decimals, **kwargs)


def quantity_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=QUANTITY.max_digits, decimal_places=QUANTITY.decimals, **kwargs)


def price_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=PRICE.max_digits, decimal_places=PRICE.decimals, **kwargs)
