"""The fill model: at what price, in what parts and for what fee an account's orders fill
(docs/DESIGN.md, "Fill model"). Pure rules on values, no query: the account's model is read
with the order's other rows (``orders.selectors.fill_model_of``), and settlement applies what
these functions compute.

- ``ideal`` (the default): the last price, whole fills, no fees: every order fills as it
  always did, through the same statements.
- ``realistic``: a spread around the price, LEAN's volume-share slippage, resting orders
  filled in parts by their share of each minute's volume, and Alpaca's crypto fee tier 1.
- ``custom``: any other set of the parameters, each set on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from django.conf import settings

from assets.quotes import bid_ask
from core.money import EXACT, PRICE, ZERO, to_cents_up

IDEAL = "ideal"
REALISTIC = "realistic"
CUSTOM = "custom"
PROFILES_SETTABLE = (IDEAL, REALISTIC)  # what a user may ask for by name; custom is what results

SLIPPAGE_NONE = "none"
SLIPPAGE_VOLUME_SHARE = "volume_share"
SLIPPAGES = (SLIPPAGE_NONE, SLIPPAGE_VOLUME_SHARE)

BPS = Decimal(10_000)
# Bounds of each parameter, checked by the API, the admin's form and the table's constraints.
MAX_SPREAD_BPS = Decimal(1000)  # 10 %
MAX_FEE_BPS = Decimal(1000)
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class FillParams:
    """One account's fill model, every parameter resolved."""

    spread_bps: Decimal = ZERO
    slippage: str = SLIPPAGE_NONE
    volume_limit: Decimal = Decimal("0.025")  # LEAN's VolumeShareSlippageModel defaults
    price_impact: Decimal = Decimal("0.1")
    fill_participation: Decimal | None = None  # None: a resting order fills whole
    maker_fee_bps: Decimal = ZERO
    taker_fee_bps: Decimal = ZERO
    seed: int = 0

    @property
    def is_ideal(self) -> bool:
        """Fills exactly as an order always filled: the last price, whole, free."""
        return (
            self.spread_bps == 0
            and self.slippage == SLIPPAGE_NONE
            and self.fill_participation is None
            and self.maker_fee_bps == 0
            and self.taker_fee_bps == 0
        )

    @property
    def profile(self) -> str:
        """The profile these parameters are, or ``custom``."""
        for name, params in PROFILES.items():
            if self == params:
                return name
        return CUSTOM

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    # --- prices --------------------------------------------------------------------------

    def bid_ask(self, mid: Decimal) -> tuple[Decimal, Decimal]:
        return bid_ask(mid, self.spread_bps)

    def slip(self, *, quantity: Decimal, volume: Decimal | None) -> Decimal:
        """LEAN's volume share: min(quantity / minute volume, volume_limit)^2 x price_impact, a
        fraction of the price. No volume known (or none traded): the limit's share."""
        if self.slippage == SLIPPAGE_NONE:
            return ZERO
        share = self.volume_limit if not volume else min(EXACT.divide(quantity, volume), self.volume_limit)
        return EXACT.multiply(EXACT.multiply(share, share), self.price_impact)

    def market_price(self, *, side: str, mid: Decimal, quantity: Decimal, volume: Decimal | None) -> Decimal:
        """A market order's fill price: a BUY at the ask plus slippage, a SELL at the bid less
        it, at the price's 12 decimals (rounded against the order)."""
        bid, ask = self.bid_ask(mid)
        slip = self.slip(quantity=quantity, volume=volume)
        if side == "BUY":
            return EXACT.multiply(ask, 1 + slip).quantize(PRICE.step, rounding=ROUND_CEILING)
        return max(EXACT.multiply(bid, 1 - slip).quantize(PRICE.step, rounding=ROUND_FLOOR), PRICE.step)

    # --- fees ----------------------------------------------------------------------------

    def fee_bps(self, *, maker: bool) -> Decimal:
        return self.maker_fee_bps if maker else self.taker_fee_bps

    def buy_fee(self, *, quantity: Decimal, step: Decimal, maker: bool) -> Decimal:
        """A BUY's fee, in the asset received: quantity x bps, rounded UP to the asset's step,
        but always leaving at least one step of what was bought (a fill of one step pays none:
        the holding must gain something for its cost basis to mean anything)."""
        bps = self.fee_bps(maker=maker)
        if not bps:
            return ZERO
        fee = EXACT.divide(EXACT.multiply(quantity, bps), BPS).quantize(step, rounding=ROUND_CEILING)
        return max(min(fee, quantity - step), ZERO)

    def sell_fee(self, *, proceeds: Decimal, maker: bool) -> Decimal:
        """A SELL's fee, in USD: proceeds x bps, rounded UP to the cent (never more than the proceeds)."""
        bps = self.fee_bps(maker=maker)
        if not bps:
            return ZERO
        return min(to_cents_up(EXACT.divide(EXACT.multiply(proceeds, bps), BPS)), proceeds)

    # --- partial fills ---------------------------------------------------------------------

    def fillable(self, *, remaining: Decimal, volume: Decimal | None, step: Decimal, key: str) -> Decimal:
        """How much of a resting order's ``remaining`` quantity one pass fills: all of it
        without a participation limit; else fill_participation x the minute's volume, scaled
        by a draw in [0.5, 1] that depends only on the seed and ``key`` (the order and the
        minute), so the same seed, prices and orders give the same fills. Rounded down to the
        asset's step; 0 when the minute traded nothing."""
        if self.fill_participation is None or volume is None:
            return remaining
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        draw = Decimal(int.from_bytes(digest[:4], "big")) / Decimal(2**32)
        share = EXACT.multiply(self.fill_participation, Decimal("0.5") + draw / 2)
        allowed = EXACT.multiply(volume, share).quantize(step, rounding=ROUND_DOWN)
        return min(remaining, max(allowed, ZERO))


PROFILES: dict[str, FillParams] = {
    IDEAL: FillParams(),
    REALISTIC: FillParams(
        spread_bps=Decimal(10),
        slippage=SLIPPAGE_VOLUME_SHARE,
        volume_limit=Decimal("0.025"),
        price_impact=Decimal("0.1"),
        fill_participation=Decimal("0.1"),
        maker_fee_bps=Decimal(15),  # Alpaca's crypto fee tier 1
        taker_fee_bps=Decimal(25),
        seed=0,
    ),
}


def deployment_default() -> FillParams:
    """The deployment's model (settings ``FILL_MODEL`` and one setting per parameter, each
    defaulting to the profile's): what an account without its own uses."""
    return FillParams(
        spread_bps=settings.FILL_SPREAD_BPS,
        slippage=settings.FILL_SLIPPAGE,
        volume_limit=settings.FILL_VOLUME_LIMIT,
        price_impact=settings.FILL_PRICE_IMPACT,
        fill_participation=settings.FILL_PARTICIPATION,
        maker_fee_bps=settings.FILL_MAKER_FEE_BPS,
        taker_fee_bps=settings.FILL_TAKER_FEE_BPS,
        seed=settings.FILL_SEED,
    )
