"""Recorded prices for the market-data tests, which read the same history through /api/v1
and through Alpaca's /v1beta3: BTC minute by minute from ``T0`` (the ``btc_minutes``
fixture of tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from assets.models import Asset, PriceRecord

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def record(asset: Asset, price: str, at: datetime) -> None:
    PriceRecord.objects.create(asset=asset, price=Decimal(price), as_of=at, source="test", slot=at)


def record_btc_minutes(btc: Asset) -> None:
    """BTC at 12:00 100, 12:01 103, 12:02 99, 12:03 101 | 12:05 110, 12:09 108 | 12:10 107.5."""
    for minute, price in [(0, "100"), (1, "103"), (2, "99"), (3, "101"), (5, "110"), (9, "108"), (10, "107.5")]:
        record(btc, price, T0 + timedelta(minutes=minute))
