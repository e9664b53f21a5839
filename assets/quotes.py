"""What a price is, as every module of pricing passes it around: a ``Quote``, and the
``PricedAsset`` it is a quote of. Imports nothing of the project, so that the providers, the
guard, the history and the cache in front of them can all use it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import Protocol

# Prices are stored with 12 decimals (core.money.PRICE); this module imports nothing of the
# project, so the step is spelled here.
_PRICE_STEP = Decimal("1e-12")
_BPS = Decimal(10_000)
# Exact for a price's 30 digits times a spread's (the default context keeps 28 and rounds).
_WIDE = Context(prec=80)


@dataclass(frozen=True)
class Quote:
    asset_id: str
    price: Decimal  # USD per unit, > 0, 12 decimal places
    as_of: datetime  # tz-aware UTC: when the provider says the price was observed
    source: str  # "simulated" or "coingecko"
    # Not fit to trade on: older than PRICE_MAX_AGE_SECONDS, the provider failed when last
    # asked, or the price guard is holding it (docs/DESIGN.md, "Prices and the price guard").
    stale: bool = False
    # The asset's traded volume in the minute the price was observed, in units of the asset
    # (docs/DESIGN.md, "Fill model"); None when the provider says nothing of it. Not part of a
    # quote's equality: two quotes of the same price at the same instant are the same quote.
    volume: Decimal | None = field(default=None, compare=False)

    def bid_ask(self, spread_bps: Decimal) -> tuple[Decimal, Decimal]:
        """(bid, ask) around this price as the mid: see ``bid_ask``."""
        return bid_ask(self.price, spread_bps)


def market_bid_ask(mid: Decimal) -> tuple[Decimal, Decimal]:
    """The bid and ask the public market data shows: the deployment's spread (``FILL_SPREAD_BPS``)."""
    from django.conf import settings  # the only setting this module reads, when asked

    return bid_ask(mid, settings.FILL_SPREAD_BPS)


def bid_ask(mid: Decimal, spread_bps: Decimal) -> tuple[Decimal, Decimal]:
    """The bid and ask a spread of ``spread_bps`` basis points puts around ``mid``: bid = mid x
    (1 - s/2), ask = mid x (1 + s/2), each at the price's 12 decimals, the bid rounded down and
    the ask up, so a spread never narrows by rounding. A spread of 0 gives (mid, mid) exactly
    (docs/DESIGN.md, "Fill model")."""
    if not spread_bps:
        return mid, mid
    half = _WIDE.divide(spread_bps, _BPS * 2)
    bid = _WIDE.multiply(mid, 1 - half).quantize(_PRICE_STEP, rounding=ROUND_FLOOR, context=_WIDE)
    ask = _WIDE.multiply(mid, 1 + half).quantize(_PRICE_STEP, rounding=ROUND_CEILING, context=_WIDE)
    return bid, ask


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
