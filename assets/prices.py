"""Market prices (SPEC section 5): two providers behind one interface, and a cache in front.

``get_quotes`` is what the rest of the project calls. It answers from the Django cache when
it can (one key per asset, ``PRICE_CACHE_SECONDS``), asks the provider once, in a batch,
for everything else, and when the provider fails or omits an asset it falls back to the
last price ever seen for it (a second key per asset, kept without timeout), flagged stale.
Trading goes through ``get_trade_quote``, which refuses stale or missing prices.

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
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from assets.models import Asset
from core.exceptions import PriceUnavailable
from core.money import ZERO, to_price

logger = logging.getLogger(__name__)

FRESH_KEY = "prices:fresh:{asset_id}"
LAST_KNOWN_KEY = "prices:last:{asset_id}"


@dataclass(frozen=True)
class Quote:
    asset_id: str
    price: Decimal  # USD per unit, > 0, 12 decimal places
    as_of: datetime  # tz-aware UTC: when the provider says the price was observed
    source: str  # "simulated" or "coingecko"
    stale: bool = False  # older than PRICE_MAX_AGE_SECONDS, or served from the last-known fallback


class ProviderError(Exception):
    """The provider could not answer at all (network, status, unreadable body)."""


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


def _cached(asset_ids: Iterable[str], key: str, *, now: datetime, force_stale: bool = False) -> dict[str, Quote]:
    keys = {key.format(asset_id=asset_id): asset_id for asset_id in asset_ids}
    found = cache.get_many(list(keys))
    return {keys[k]: _load(v, now=now, force_stale=force_stale) for k, v in found.items()}


def get_quotes(assets: Iterable[PricedAsset]) -> dict[str, Quote]:
    """Quotes by asset_id; assets with no price at all (never seen) are absent.

    Never raises for provider trouble: a failed or partial answer falls back to the
    last-known quote, marked stale. Two requests that miss the cache at the same instant
    both ask the provider (no lock); that costs one extra upstream call, never a wrong price.
    """
    by_id = {asset.asset_id: asset for asset in assets}
    if not by_id:
        return {}
    now = timezone.now()
    quotes = _cached(by_id, FRESH_KEY, now=now)
    missing = [asset for asset_id, asset in by_id.items() if asset_id not in quotes]
    if missing:
        provider = get_provider()
        try:
            fetched = provider.fetch(missing)
        except ProviderError as exc:
            logger.warning("Price provider %s failed, using last known prices: %s", provider.name, exc)
            fetched = {}
        fetched = {asset.asset_id: fetched[asset.asset_id] for asset in missing if asset.asset_id in fetched}
        store_quotes(fetched.values())
        quotes.update({asset_id: replace(q, stale=_is_stale(q.as_of, now)) for asset_id, q in fetched.items()})
        unpriced = [asset.asset_id for asset in missing if asset.asset_id not in fetched]
        if unpriced:
            quotes.update(_cached(unpriced, LAST_KNOWN_KEY, now=now, force_stale=True))
    return quotes


def get_trade_quote(asset: Asset) -> Quote:
    """A price fit to trade on: fresh, from the provider or the cache; raises PriceUnavailable."""
    quote = get_quotes([asset]).get(asset.asset_id)
    if quote is None:
        raise PriceUnavailable(f"No price is available for {asset.asset_id}.", details={"asset_id": asset.asset_id})
    if quote.stale:
        raise PriceUnavailable(
            f"The price of {asset.asset_id} is out of date (as of {quote.as_of.isoformat()}); trading is paused.",
            details={"asset_id": asset.asset_id},
        )
    return quote


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
                asset_id=asset.asset_id,
                price=to_price(Decimal(asset.reference_price) * self.multiplier(asset.asset_id, bucket)),
                as_of=as_of,
                source=self.name,
            )
            for asset in assets
        }

    @staticmethod
    def multiplier(asset_id: str, bucket: int) -> Decimal:
        digest = hashlib.sha256(asset_id.encode()).digest()
        offset = 0.0
        for i, (amplitude, period) in enumerate(_WAVES):
            phase = int.from_bytes(digest[4 * i : 4 * i + 4], "big") / 2**32 * 2 * math.pi
            offset += amplitude * math.sin(2 * math.pi * bucket / period + phase)
        return Decimal(1) + Decimal(str(round(offset, 9)))


# --- CoinGecko provider ----------------------------------------------------------------

BACKOFF_BASE_SECONDS = 0.2  # 0.2 s, then 0.4 s, 0.8 s, ...
MAX_RETRY_AFTER_SECONDS = 2  # a longer Retry-After is not worth holding a request for
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PRO_API_HOST = "pro-api.coingecko.com"

_sessions = threading.local()


def _thread_session() -> requests.Session:
    # One Session per thread: connection reuse without sharing a Session across threads.
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    return session


class CoinGeckoProvider:
    """CoinGecko's ``/simple/price``: one GET for all assets asked, retried with backoff."""

    name = "coingecko"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float | None = None,
        retries: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = (base_url if base_url is not None else settings.COINGECKO_API_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else settings.COINGECKO_API_KEY
        timeout = timeout_seconds if timeout_seconds is not None else settings.COINGECKO_TIMEOUT_SECONDS
        # (connect, read); the read timeout bounds each wait for bytes, not the whole answer.
        self.timeout = (timeout, timeout)
        self.retries = retries if retries is not None else settings.COINGECKO_RETRIES
        self.session = session

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
        body = self._get(f"{self.base_url}/simple/price", params)
        return self._parse(body, by_coin)

    def _get(self, url: str, params: dict[str, str]) -> str:
        session = self.session or _thread_session()
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            delay = BACKOFF_BASE_SECONDS * 2**attempt
            try:
                response = session.get(url, params=params, headers=self.headers(), timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                if last:
                    raise ProviderError(f"CoinGecko unreachable after {attempts} attempt(s): {exc}") from exc
            except requests.RequestException as exc:
                raise ProviderError(f"CoinGecko request failed: {exc}") from exc
            else:
                if response.status_code == 200:
                    return response.text
                if response.status_code not in RETRY_STATUSES:
                    raise ProviderError(f"CoinGecko answered HTTP {response.status_code}.")
                if last:
                    raise ProviderError(f"CoinGecko answered HTTP {response.status_code} {attempts} time(s).")
                retry_after = _retry_after_seconds(response)
                if retry_after is not None:
                    if retry_after > MAX_RETRY_AFTER_SECONDS:
                        raise ProviderError(
                            f"CoinGecko answered HTTP {response.status_code} and asks to retry after {retry_after} s."
                        )
                    delay = max(delay, retry_after)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _parse(self, body: str, by_coin: dict[str, list[str]]) -> dict[str, Quote]:
        try:
            # Never float: prices become Decimal as they are read, NaN/Infinity too (then rejected).
            data = json.loads(body, parse_float=Decimal, parse_constant=Decimal)
        except ValueError as exc:
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


def _retry_after_seconds(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None  # the HTTP-date form falls back to our own backoff


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
    """For the health endpoint: ``{"provider", "ok", "detail"}``.

    Cheap: a fresh cached price of one active asset proves the provider answered within
    PRICE_CACHE_SECONDS; only without one does it ask the provider, for that one asset,
    once (no retries, so a down provider costs the health check one timeout at most).
    """
    provider = get_provider()
    if isinstance(provider, CoinGeckoProvider):
        provider.retries = 0  # a health check answers now; retries are for requests that need a price
    assets = Asset.objects.filter(is_active=True).order_by("asset_id")
    if provider.name == CoinGeckoProvider.name:
        assets = assets.exclude(coingecko_id="")
    asset = assets.first()
    if asset is None:
        return {"provider": provider.name, "ok": True, "detail": "no active asset to price"}
    now = timezone.now()
    quote = _cached([asset.asset_id], FRESH_KEY, now=now).get(asset.asset_id)
    if quote is None:
        try:
            quote = provider.fetch([asset]).get(asset.asset_id)
        except ProviderError as exc:
            return {"provider": provider.name, "ok": False, "detail": str(exc)}
        if quote is None:
            return {"provider": provider.name, "ok": False, "detail": f"no price for {asset.asset_id}"}
        store_quotes([quote])
        quote = replace(quote, stale=_is_stale(quote.as_of, now))
    if quote.stale:
        return {
            "provider": provider.name,
            "ok": False,
            "detail": f"{asset.asset_id} price is stale (as of {quote.as_of.isoformat()})",
        }
    return {"provider": provider.name, "ok": True, "detail": f"{asset.asset_id} priced as of {quote.as_of.isoformat()}"}
