"""Market prices (SPEC section 5): two providers behind one interface, and a cache in front.

``get_quotes`` is what the rest of the project calls. It answers from the Django cache when
it can (one key per asset, ``PRICE_CACHE_SECONDS``), asks the provider once, in a batch,
for everything else, and when the provider fails or omits an asset it falls back to the
last price ever seen for it (a second key per asset, kept without timeout), flagged stale.
Trading goes through ``get_trade_quote``, which refuses stale or missing prices.

What a bad provider cannot do (SPEC section 10): hold a request longer than
PRICE_DEADLINE_SECONDS (``assets.price_http``), be asked again and again while it is down
(``assets.price_breaker``), or have an absurd price traded on (``_plausible``).

Staleness is computed when a quote is read, from its ``as_of``, never stored: a quote
cached a minute ago becomes stale in the cache without anybody touching it.

Cached values are plain tuples of strings (not pickled ``Quote`` objects), so a change to
this module never makes an old cache entry unreadable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from assets import price_history
from assets.models import Asset
from assets.price_breaker import CLOSED, breaker_for
from assets.price_http import ProviderError, get_within_deadline
from core.exceptions import PriceUnavailable
from core.money import ZERO, to_price

logger = logging.getLogger(__name__)

FRESH_KEY = "prices:fresh:{asset_id}"
LAST_KNOWN_KEY = "prices:last:{asset_id}"
BREAKER_KEY = "prices:breaker:{provider}"  # (error, open until unix time): an opening, for other processes
JUMP_KEY = "prices:jump:{asset_id}"  # a price refused as a jump, and how many answers in a row gave it
JUMP_CONFIRMATIONS = 3  # answers in a row at a new level that make a jump the price after all
JUMP_MEMORY_SECONDS = 600


@dataclass(frozen=True)
class Quote:
    asset_id: str
    price: Decimal  # USD per unit, > 0, 12 decimal places
    as_of: datetime  # tz-aware UTC: when the provider says the price was observed
    source: str  # "simulated" or "coingecko"
    stale: bool = False  # older than PRICE_MAX_AGE_SECONDS, or served from the last-known fallback


class PricedAsset(Protocol):
    """What pricing reads of an asset: an ``Asset``, or a row of a read that selected these
    columns with it (``balances.selectors.HeldAsset``)."""

    @property
    def asset_id(self) -> str: ...

    @property
    def coingecko_id(self) -> str: ...

    @property
    def reference_price(self) -> Decimal: ...


class PriceProvider(Protocol):
    name: str

    def fetch(self, assets: Sequence[PricedAsset]) -> dict[str, Quote]:
        """Quotes by asset_id for those of ``assets`` the provider knows; raises ProviderError."""
        ...


# --- cache -----------------------------------------------------------------------------


def _is_stale(as_of: datetime, now: datetime) -> bool:
    return now - as_of > timedelta(seconds=settings.PRICE_MAX_AGE_SECONDS)


def _dump(quote: Quote) -> tuple[str, str, str, str]:
    return (quote.asset_id, str(quote.price), quote.as_of.isoformat(), quote.source)


def _load(value: tuple[str, str, str, str], *, now: datetime, force_stale: bool = False) -> Quote:
    asset_id, price, as_of, source = value
    as_of_dt = datetime.fromisoformat(as_of)
    return Quote(
        asset_id=asset_id,
        price=Decimal(price),
        as_of=as_of_dt,
        source=source,
        stale=force_stale or _is_stale(as_of_dt, now),
    )


def store_quotes(quotes: Iterable[Quote]) -> None:
    """Remember quotes as fresh (for PRICE_CACHE_SECONDS) and as the last known (forever)."""
    quotes = list(quotes)
    if not quotes:
        return
    cache.set_many({FRESH_KEY.format(asset_id=q.asset_id): _dump(q) for q in quotes}, settings.PRICE_CACHE_SECONDS)
    cache.set_many({LAST_KNOWN_KEY.format(asset_id=q.asset_id): _dump(q) for q in quotes}, None)
    price_history.record_quotes(quotes)  # the stored history (SPEC 11): one row per asset a window


def _cached(asset_ids: Iterable[str], key: str, *, now: datetime, force_stale: bool = False) -> dict[str, Quote]:
    keys = {key.format(asset_id=asset_id): asset_id for asset_id in asset_ids}
    found = cache.get_many(list(keys))
    return {keys[k]: _load(v, now=now, force_stale=force_stale) for k, v in found.items()}


def get_quotes(assets: Iterable[PricedAsset]) -> dict[str, Quote]:
    """Quotes by asset_id; assets with no price at all (never seen) are absent.

    Never raises for provider trouble: a failed, refused (circuit breaker open), partial or
    implausible answer falls back to the last-known quote, marked stale. A cache that is down
    answers nothing (core.cache), which reads as a miss. Two requests that miss the cache at
    the same instant both ask the provider (no lock); that costs one extra upstream call, never
    a wrong price.
    """
    by_id = {asset.asset_id: asset for asset in assets}
    if not by_id:
        return {}
    now = timezone.now()
    quotes = _cached(by_id, FRESH_KEY, now=now)
    missing = [asset for asset_id, asset in by_id.items() if asset_id not in quotes]
    if missing:
        answered = _fetch(missing)
        fetched = _plausible({a.asset_id: answered[a.asset_id] for a in missing if a.asset_id in answered})
        store_quotes(fetched.values())
        quotes.update({asset_id: replace(q, stale=_is_stale(q.as_of, now)) for asset_id, q in fetched.items()})
        unpriced = [asset.asset_id for asset in missing if asset.asset_id not in fetched]
        if unpriced:
            quotes.update(_cached(unpriced, LAST_KNOWN_KEY, now=now, force_stale=True))
    return quotes


def _fetch(assets: Sequence[PricedAsset]) -> dict[str, Quote]:
    """The provider's answer through its circuit breaker; {} when it failed or was not asked."""
    provider = get_provider()
    breaker = breaker_for(provider.name)
    shared_key = BREAKER_KEY.format(provider=provider.name)
    if breaker.closed:
        # One cache read per provider call (not per request): another process may know better.
        opened_elsewhere = cache.get(shared_key)
        if opened_elsewhere is not None:
            error, until = opened_elsewhere
            breaker.open_elsewhere(error, seconds_left=until - time.time())
    if not breaker.allow():
        return {}
    try:
        fetched = provider.fetch(assets)
    except ProviderError as exc:
        if breaker.record_failure(str(exc)):
            reset = settings.PRICE_BREAKER_RESET_SECONDS
            cache.set(shared_key, (str(exc), time.time() + reset), reset)
        logger.warning("Price provider %s failed, using last known prices: %s", provider.name, exc)
        return {}
    if breaker.record_success():
        cache.delete(shared_key)
    return fetched


def _moved(old: Decimal, new: Decimal) -> Decimal:
    return abs(new - old) / old


def _plausible(fetched: dict[str, Quote]) -> dict[str, Quote]:
    """The quotes fit to believe. A price outside [MIN_PLAUSIBLE_PRICE, MAX_PLAUSIBLE_PRICE]
    is refused; so is one that moved more than MAX_PRICE_JUMP (a fraction) from the last
    known one, until JUMP_CONFIRMATIONS answers in a row agree on the new level (a real crash
    must not stop trading for good; one bad tick must not be traded on). A refused quote is
    treated as a failure for that asset: not stored, so the last known one is shown, stale."""
    in_range: dict[str, Quote] = {}
    for asset_id, quote in fetched.items():
        if settings.MIN_PLAUSIBLE_PRICE <= quote.price <= settings.MAX_PLAUSIBLE_PRICE:
            in_range[asset_id] = quote
        else:
            logger.warning("Refusing the implausible price %s for %s from %s", quote.price, asset_id, quote.source)
    if not in_range:
        return {}
    keys = [key.format(asset_id=asset_id) for asset_id in in_range for key in (LAST_KNOWN_KEY, JUMP_KEY)]
    known = cache.get_many(keys)
    max_jump = settings.MAX_PRICE_JUMP
    accepted: dict[str, Quote] = {}
    pending: dict[str, tuple[str, int]] = {}
    settled: list[str] = []
    for asset_id, quote in in_range.items():
        last = known.get(LAST_KNOWN_KEY.format(asset_id=asset_id))
        jump_key = JUMP_KEY.format(asset_id=asset_id)
        candidate = known.get(jump_key)
        if last is None or _moved(Decimal(last[1]), quote.price) <= max_jump:
            accepted[asset_id] = quote
        else:
            seen = candidate[1] + 1 if candidate and _moved(Decimal(candidate[0]), quote.price) <= max_jump else 1
            if seen >= JUMP_CONFIRMATIONS:
                logger.warning("%s moved from %s to %s, confirmed %d times", asset_id, last[1], quote.price, seen)
                accepted[asset_id] = quote
            else:
                logger.warning("Refusing %s at %s: more than %s away from %s", asset_id, quote.price, max_jump, last[1])
                pending[jump_key] = (str(quote.price), seen)
                continue
        if candidate is not None:
            settled.append(jump_key)
    if pending:
        cache.set_many(pending, JUMP_MEMORY_SECONDS)
    if settled:
        cache.delete_many(settled)
    return accepted


def get_trade_quote(asset: Asset) -> Quote:
    """A price fit to trade on: fresh, from the provider or the cache; raises PriceUnavailable,
    with the seconds after which a retry may find one (``retry_after_seconds``)."""
    quote = get_quotes([asset]).get(asset.asset_id)
    if quote is None:
        raise PriceUnavailable(
            f"No price is available for {asset.asset_id}.",
            details={"asset_id": asset.asset_id},
            retry_after=retry_after_seconds(),
        )
    if quote.stale:
        raise PriceUnavailable(
            f"The price of {asset.asset_id} is out of date (as of {quote.as_of.isoformat()}); trading is paused.",
            details={"asset_id": asset.asset_id},
            retry_after=retry_after_seconds(),
        )
    return quote


def retry_after_seconds() -> int:
    """When a request refused for want of a price may succeed: once this process's circuit
    breaker lets the provider be asked again, or, while it is closed (one failed call, a
    refused quote), after PriceUnavailable's short default."""
    wait = breaker_for(get_provider().name).seconds_until_probe()
    return math.ceil(wait) if wait > 0 else PriceUnavailable.retry_after


# --- simulated provider ----------------------------------------------------------------

SIMULATED_BUCKET_SECONDS = 5
# (amplitude, period in buckets) of three waves; the amplitudes add up to 9%, so the price
# stays within +-9% of the reference, and one bucket moves it by at most ~0.7%.
_WAVES = ((0.05, 720), (0.03, 97), (0.01, 13))


class SimulatedProvider:
    """An offline market: each asset's price wanders around its ``reference_price``.

    The price in time bucket ``k`` (5 s) is ``reference_price * (1 + sum of three sine
    waves of k)``, each wave with a phase drawn from a SHA-256 of the asset id, so it is
    the same in every process and on every run for the same instant, moves smoothly from
    one bucket to the next, and no two assets move in lockstep. The multiplier is the only
    float: it is rounded to 9 digits through ``Decimal(str(...))`` before it touches money.
    """

    name = "simulated"

    def fetch(self, assets: Sequence[PricedAsset]) -> dict[str, Quote]:
        bucket = int(time.time()) // SIMULATED_BUCKET_SECONDS
        as_of = datetime.fromtimestamp(bucket * SIMULATED_BUCKET_SECONDS, tz=UTC)
        return {
            asset.asset_id: Quote(
                asset_id=asset.asset_id, price=self.price_at(asset, bucket), as_of=as_of, source=self.name
            )
            for asset in assets
        }

    def price_at(self, asset: PricedAsset, bucket: int) -> Decimal:
        """The price in time bucket ``bucket``, past or present (``seed_demo`` backfills the
        history with it, so the recorded past meets the live price without a jump)."""
        return to_price(Decimal(asset.reference_price) * self.multiplier(asset.asset_id, bucket))

    @staticmethod
    def multiplier(asset_id: str, bucket: int) -> Decimal:
        digest = hashlib.sha256(asset_id.encode()).digest()
        offset = 0.0
        for i, (amplitude, period) in enumerate(_WAVES):
            phase = int.from_bytes(digest[4 * i : 4 * i + 4], "big") / 2**32 * 2 * math.pi
            offset += amplitude * math.sin(2 * math.pi * bucket / period + phase)
        return Decimal(1) + Decimal(str(round(offset, 9)))


# --- CoinGecko provider ----------------------------------------------------------------

PRO_API_HOST = "pro-api.coingecko.com"


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
            for asset_id in asset_ids:
                quotes[asset_id] = Quote(asset_id=asset_id, price=price, as_of=as_of, source=self.name)
        return quotes


def _parse_entry(entry: object, *, now: datetime) -> tuple[Decimal, datetime] | None:
    """(price, as_of) from ``{"usd": 67187.3358, "usd_last_updated_at": 1711356300}``, or None."""
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
    # A timestamp in the future (clock skew) would never go stale; treat it as "now".
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


def provider_status() -> dict:
    """For the health endpoint: what this process last learned of the provider, from its
    circuit breaker. Never calls the provider: a health check polled every few seconds by a
    load balancer must not become a load on CoinGecko, nor wait on it."""
    provider = get_provider()
    snapshot = breaker_for(provider.name).snapshot()
    return {
        "provider": provider.name,
        "ok": snapshot.state == CLOSED,
        "breaker": snapshot.state,
        "consecutive_failures": snapshot.consecutive_failures,
        "last_success_at": snapshot.last_success_at.isoformat() if snapshot.last_success_at else None,
        "last_failure_at": snapshot.last_failure_at.isoformat() if snapshot.last_failure_at else None,
        "last_error": snapshot.last_error,
    }
