"""``Precision.fits`` says what PostgreSQL says: a value fits a kind of number exactly when
its ``numeric(max_digits, decimals)`` column stores it unchanged. A value with too many
decimals would be rounded silently, one with too many integer digits refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DataError, connection, transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.money import PRICE, QUANTITY, USD, Precision

pytestmark = pytest.mark.django_db


def stored_unchanged(value: Decimal, precision: Precision) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT %s::{precision.sql_type} = %s::numeric", [value, value])
            return cursor.fetchone()[0]
    except DataError:  # numeric field overflow
        return False


# Positive values around every precision's edges: up to 42 significant digits, scaled from
# 10^-24 to 10^+24.
values = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(min_value=1, max_value=10**42),
    st.integers(min_value=-24 - 42, max_value=24),
)


@pytest.mark.parametrize("precision", [QUANTITY, PRICE, USD], ids=["QUANTITY", "PRICE", "USD"])
@hypothesis_settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=values)
def test_fits_is_what_the_column_stores_unchanged(precision, value):
    assert precision.fits(value) == stored_unchanged(value, precision)


@pytest.mark.parametrize(
    ("precision", "largest", "finest"),
    [
        (QUANTITY, "99999999999999999999.999999999999999999", "0.000000000000000001"),
        (PRICE, "999999999999999999.999999999999", "0.000000000001"),
        (USD, "999999999999999999.99", "0.01"),
    ],
)
def test_the_edges_fit_and_one_step_past_them_does_not(precision, largest, finest):
    largest, finest = Decimal(largest), Decimal(finest)
    assert precision.fits(largest)
    assert precision.fits(finest)
    assert not precision.fits(largest + finest)
    assert not precision.fits(finest / 10)
    assert precision.step == finest
