"""The two price providers behind one interface (docs/DESIGN.md, "Prices and the price
guard"): the simulated market, offline and deterministic, and CoinGecko's ``/simple/price``.
``get_provider`` picks one by ``PRICE_PROVIDER``. A provider only answers; what is believed
of its answer is the price guard's business (``assets.price_guard``), and when to ask it is
``assets.prices``'."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from assets.price_http import ProviderError, get_within_deadline
from assets.quotes import PricedAsset, Quote
from core.money import ZERO, to_price

logger = logging.getLogger(__name__)


class PriceProvider(Protocol):
    name: str

    def fetch(self, assets: Sequence[PricedAsset]) -> dict[str, Quote]:
        """Quotes by asset_id for those of ``assets`` the provider knows; raises ProviderError."""
        ...


# --- simulated provider ----------------------------------------------------------------

SIMULATED_BUCKET_SECONDS = 5
_DAY_SECONDS = 86_400
# Sixteen sine waves with periods spaced evenly on a log scale from a minute to eight days,
# each with an amplitude in proportion to the square root of its period: the spectrum of a
# random walk, so a move over a span grows like the square root of the span (as a real
# price's does) up to days, and past the longest period the price comes back towards its
# reference instead of wandering off for good.
_PERIODS = tuple(60 * (8 * _DAY_SECONDS / 60) ** (i / 15) for i in range(16))
# Scaled so that the spread of one-day moves (their standard deviation over time, which the
# waves' phases do not change) is exactly 1: times an asset's daily_volatility, its own.
_SCALE = 1 / math.sqrt(
    sum(2 * (period / _DAY_SECONDS) * math.sin(math.pi * _DAY_SECONDS / period) ** 2 for period in _PERIODS)
)
_AMPLITUDES = tuple(_SCALE * math.sqrt(period / _DAY_SECONDS) for period in _PERIODS)
# The log of the multiplier never leaves +-(daily_volatility * WALK_BOUND), WALK_BOUND being
# about 2.9: the price stays within -8 % and +9 % of its reference for BTC's 3 % a day, and
# within a factor of 1.8 either way at the most an asset may have (MAX_DAILY_VOLATILITY).
WALK_BOUND = sum(_AMPLITUDES)


class SimulatedProvider:
    """An offline market: each asset's price wanders around its ``reference_price``, as much
    in a day as its ``daily_volatility`` says (BTC about 3 %, a stablecoin 0.1 %).

    The price in time bucket ``k`` (5 s) is ``reference_price * exp(daily_volatility * sum of
    sixteen sine waves of k)``, each wave with a phase drawn from a SHA-512 of the asset id,
    so it is the same in every process and on every run for the same instant, moves smoothly
    from one bucket to the next, and no two assets move in lockstep. The multiplier is the
    only float: it is rounded to 9 digits through ``Decimal(str(...))`` before it touches money.
    """

    name = "simulated"

    def fetch(self, assets: Sequence[PricedAsset]) -> dict[str, Quote]:
        bucket = int(time.time()) // SIMULATED_BUCKET_SECONDS
        as_of = datetime.fromtimestamp(bucket * SIMULATED_BUCKET_SECONDS, tz=UTC)
        quotes = {}
        for asset in assets:
            price = self.price_at(asset, bucket)
            volume = self.minute_volume(asset.asset_id, bucket * SIMULATED_BUCKET_SECONDS // 60, price=price)
            quotes[asset.asset_id] = Quote(
                asset_id=asset.asset_id, price=price, as_of=as_of, source=self.name, volume=volume
            )
        return quotes

    @staticmethod
    def minute_volume(asset_id: str, minute: int, *, price: Decimal) -> Decimal:
        """Units of the asset traded in minute ``minute`` (since the epoch): about
        SIMULATED_MINUTE_USD_VOLUME of value, between half and one and a half times it, drawn
        from a SHA-256 of the asset and the minute, so the same in every process and run
        (docs/DESIGN.md, "Fill model")."""
        digest = hashlib.sha256(f"{asset_id}:{minute}".encode()).digest()
        draw = Decimal(int.from_bytes(digest[:4], "big")) / Decimal(2**32)
        usd = settings.SIMULATED_MINUTE_USD_VOLUME * (Decimal("0.5") + draw)
        return (usd / price).quantize(VOLUME_STEP)

    def price_at(self, asset: PricedAsset, bucket: int) -> Decimal:
        """The price in time bucket ``bucket``, past or present (``seed_demo`` backfills the
        history with it, so the recorded past meets the live price without a jump)."""
        multiplier = self.multiplier(asset.asset_id, bucket, daily_volatility=asset.daily_volatility)
        return to_price(Decimal(asset.reference_price) * multiplier)

    @staticmethod
    def multiplier(asset_id: str, bucket: int, *, daily_volatility: Decimal) -> Decimal:
        digest = hashlib.sha512(asset_id.encode()).digest()
        seconds = bucket * SIMULATED_BUCKET_SECONDS
        offset = 0.0
        for i, (amplitude, period) in enumerate(zip(_AMPLITUDES, _PERIODS, strict=True)):
            phase = int.from_bytes(digest[4 * i : 4 * i + 4], "big") / 2**32 * 2 * math.pi
            offset += amplitude * math.sin(2 * math.pi * seconds / period + phase)
        return Decimal(str(round(math.exp(float(daily_volatility) * offset), 9)))


# A minute's volume is kept to 8 decimals (a satoshi): finer says nothing about a market.
VOLUME_STEP = Decimal("0.00000001")
MINUTES_A_DAY = 1440

# --- CoinGecko provider ----------------------------------------------------------------

PRO_API_HOST = "pro-api.coingecko.com"
# A quote stamped later than now by more than this is refused: clocks kept by NTP agree to
# well under a second, and CoinGecko stamps whole seconds; a later stamp is a broken feed (and
# would keep its quote looking fresh after it is not). Within it, the stamp is taken as now.
MAX_CLOCK_SKEW = timedelta(seconds=10)
# A quote stamped earlier than this before now is refused too: CoinGecko updates a listed
# coin's price every minute or so, so a day-old stamp (or 0, the epoch) is a broken feed, and
# recording it would write a price into the history's past.
MAX_QUOTE_AGE = timedelta(days=1)


class CoinGeckoProvider:
    """CoinGecko's ``/simple/price``: one GET for all assets asked, retried with backoff, the
    whole call within PRICE_DEADLINE_SECONDS (``assets.price_http``)."""

    name = "coingecko"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float | None = None,
        retries: int | None = None,
        deadline_seconds: float | None = None,
    ) -> None:
        self.base_url = (base_url if base_url is not None else settings.COINGECKO_API_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else settings.COINGECKO_API_KEY
        # Each connect and each wait for bytes; capped by what is left of the deadline.
        self.timeout = timeout_seconds if timeout_seconds is not None else settings.COINGECKO_TIMEOUT_SECONDS
        self.retries = retries if retries is not None else settings.COINGECKO_RETRIES
        self.deadline = deadline_seconds if deadline_seconds is not None else settings.PRICE_DEADLINE_SECONDS

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            pro = urlsplit(self.base_url).hostname == PRO_API_HOST
            headers["x-cg-pro-api-key" if pro else "x-cg-demo-api-key"] = self.api_key
        return headers

    def fetch(self, assets: Sequence[PricedAsset]) -> dict[str, Quote]:
        by_coin: dict[str, list[str]] = {}
        for asset in assets:
            if asset.coingecko_id:
                by_coin.setdefault(asset.coingecko_id, []).append(asset.asset_id)
        if not by_coin:
            return {}
        params = {
            "ids": ",".join(sorted(by_coin)),
            "vs_currencies": "usd",
            "include_last_updated_at": "true",
            # The day's volume in USD, from which a minute's in units (docs/DESIGN.md, "Fill model").
            "include_24hr_vol": "true",
            "precision": "full",
        }
        body = get_within_deadline(
            f"{self.base_url}/simple/price",
            params=params,
            headers=self.headers(),
            deadline_seconds=self.deadline,
            timeout_seconds=self.timeout,
            retries=self.retries,
            label="CoinGecko",
        )
        return self._parse(body, by_coin)

    def _parse(self, body: bytes, by_coin: dict[str, list[str]]) -> dict[str, Quote]:
        try:
            # Never float: prices become Decimal as they are read, NaN/Infinity too (then rejected).
            data = json.loads(body, parse_float=Decimal, parse_constant=Decimal)
        except (ValueError, RecursionError) as exc:
            # RecursionError: a reply nested thousands deep ("[[[[..."), which json cannot walk.
            raise ProviderError(f"CoinGecko answered something that is not JSON: {body[:80]!r}") from exc
        if not isinstance(data, dict):
            raise ProviderError(f"CoinGecko answered JSON that is not an object: {type(data).__name__}.")
        now = timezone.now()
        quotes: dict[str, Quote] = {}
        for coin_id, asset_ids in by_coin.items():
            if coin_id not in data:
                continue
            parsed = _parse_entry(data[coin_id], now=now)
            if parsed is None:
                logger.warning("Ignoring CoinGecko's unreadable price for %s: %r", coin_id, data[coin_id])
                continue
            price, as_of = parsed
            volume = _minute_volume(data[coin_id], price=price)
            for asset_id in asset_ids:
                quotes[asset_id] = Quote(asset_id=asset_id, price=price, as_of=as_of, source=self.name, volume=volume)
        return quotes


def _minute_volume(entry: dict, *, price: Decimal) -> Decimal | None:
    """An average minute's volume in units of the asset from ``usd_24h_vol`` (USD traded in
    the last day): / 1440 / price. None when it is missing or unreadable (the price stands)."""
    raw = entry.get("usd_24h_vol")
    if isinstance(raw, bool) or not isinstance(raw, Decimal | int):
        return None
    try:
        volume = (Decimal(str(raw)) / MINUTES_A_DAY / price).quantize(VOLUME_STEP)
    except InvalidOperation:
        return None
    if not volume.is_finite() or volume < 0 or volume.adjusted() >= 20:
        return None
    return volume


def _parse_entry(entry: object, *, now: datetime) -> tuple[Decimal, datetime] | None:
    """(price, as_of) from ``{"usd": 67187.3358, "usd_last_updated_at": 1711356300}``, or
    None when it is unreadable: no usable price, or a stamp outside what MAX_CLOCK_SKEW and
    MAX_QUOTE_AGE allow."""
    if not isinstance(entry, dict):
        return None
    raw_price = entry.get("usd")
    if isinstance(raw_price, bool) or not isinstance(raw_price, Decimal | int):
        return None
    try:
        price = to_price(Decimal(str(raw_price)))
    except InvalidOperation:  # NaN, or too many digits for the price column
        return None
    if not price.is_finite() or price <= ZERO:
        return None
    updated_at = entry.get("usd_last_updated_at")
    if updated_at is None:
        return price, now
    if isinstance(updated_at, bool) or not isinstance(updated_at, int):
        return None
    try:
        as_of = datetime.fromtimestamp(updated_at, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if as_of > now + MAX_CLOCK_SKEW or as_of < now - MAX_QUOTE_AGE:
        return None
    return price, min(as_of, now)


# --- choosing a provider ---------------------------------------------------------------

PROVIDERS: dict[str, type[SimulatedProvider] | type[CoinGeckoProvider]] = {
    SimulatedProvider.name: SimulatedProvider,
    CoinGeckoProvider.name: CoinGeckoProvider,
}


def get_provider() -> PriceProvider:
    """The provider named by ``settings.PRICE_PROVIDER``, configured from settings now."""
    try:
        provider_class = PROVIDERS[settings.PRICE_PROVIDER]
    except KeyError:
        raise ImproperlyConfigured(
            f"PRICE_PROVIDER must be one of {', '.join(sorted(PROVIDERS))}, not {settings.PRICE_PROVIDER!r}."
        )
    return provider_class()
