"""Precisions and rounding for money and quantities (SPEC section 2).

Rounding happens only at boundaries and only through these helpers: a buy costs the
quantity times the price rounded UP to the cent, a sell pays it rounded DOWN, so the house
never pays out a fraction of a cent it did not receive.
"""

from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal

from django.db import models

QUANTITY_MAX_DIGITS = 38
QUANTITY_DECIMALS = 18
PRICE_MAX_DIGITS = 30
PRICE_DECIMALS = 12
USD_MAX_DIGITS = 20
USD_DECIMALS = 2

# Quantities have up to 38 significant digits and quantity x price up to 68, but Decimal's
# default context keeps 28 and rounds silently, before to_cents_up/down see the value
# (10000000000.000000000000000001 x 0.0000000001 cost 1.00 instead of 1.01; adding
# 10000000000.000000000000000001 to 0 lost its last digit). Arithmetic on quantities and on
# what they are worth runs in this context, where it is exact.
EXACT = Context(prec=QUANTITY_MAX_DIGITS + PRICE_MAX_DIGITS + 2)

CENT = Decimal("0.01")
PRICE_STEP = Decimal(1).scaleb(-PRICE_DECIMALS)
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
    return value.quantize(PRICE_STEP)


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
    return models.DecimalField(max_digits=USD_MAX_DIGITS, decimal_places=USD_DECIMALS, **kwargs)


def quantity_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMALS, **kwargs)


def price_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMALS, **kwargs)
