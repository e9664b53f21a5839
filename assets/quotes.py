"""What a price is, as every module of pricing passes it around: a ``Quote``, and the
``PricedAsset`` it is a quote of. Imports nothing of the project, so that the providers, the
guard, the history and the cache in front of them can all use it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Quote:
    asset_id: str
    price: Decimal  # USD per unit, > 0, 12 decimal places
    as_of: datetime  # tz-aware UTC: when the provider says the price was observed
    source: str  # "simulated" or "coingecko"
    # Not fit to trade on: older than PRICE_MAX_AGE_SECONDS, the provider failed when last
    # asked, or the price guard is holding it (docs/DESIGN.md, "Prices and the price guard").
    stale: bool = False


class PricedAsset(Protocol):
    """What pricing reads of an asset: an ``Asset``, or a row of a read that selected these
    columns with it (``balances.selectors.HeldAsset``)."""

    @property
    def asset_id(self) -> str: ...

    @property
    def coingecko_id(self) -> str: ...

    @property
    def reference_price(self) -> Decimal: ...

    @property
    def daily_volatility(self) -> Decimal: ...
