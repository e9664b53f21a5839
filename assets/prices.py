"""Market prices, as the rest of the project asks for them (docs/DESIGN.md, "Prices and the
price guard").

``get_quotes`` reads each asset's last good price from PostgreSQL (``assets.price_guard``:
one indexed query for any number of assets) and serves it while the provider was asked about
that asset less than PRICE_CACHE_SECONDS ago, by any process. The assets due again are asked
in one batch (``refresh_quotes``, the one write of the price path): through the circuit
breaker, then the price guard judges the answer and writes the new rows, and the quotes it
accepted are recorded in the history. Every process reads the same rows, so none serves a
price older than one another process already served, and a Redis restart changes nothing.
When the provider fails or omits an asset, its last good price is shown, stale. Trading goes
through ``get_trade_quote``, which refuses stale or missing prices.

What a bad provider cannot do: hold a request longer than PRICE_DEADLINE_SECONDS
(``assets.price_http``), be asked again and again while it is down (``assets.price_breaker``),
or have an absurd price traded on (``assets.price_guard``).

Staleness is computed when a price is read, never stored: a price fetched a minute ago
becomes stale without anybody touching it. The Django cache holds no prices, only a circuit
breaker's opening (for the other processes) and the history's "already recorded" marks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from assets import price_guard, price_history
from assets.models import Asset
from assets.price_breaker import CLOSED, breaker_for
from assets.price_events import announce_prices
from assets.price_guard import GuardedPrice
from assets.price_http import ProviderError
from assets.price_providers import get_provider
from assets.quotes import PricedAsset, Quote
from core.exceptions import PriceUnavailable

logger = logging.getLogger(__name__)

BREAKER_KEY = "prices:breaker:{provider}"  # (error, open until unix time): an opening, for other processes


# --- reads -------------------------------------------------------------------------------


def get_quotes(assets: Iterable[PricedAsset]) -> dict[str, Quote]:
    """Quotes by asset_id; assets with no price at all (never priced) are absent.

    Never raises for provider trouble: a failed, refused (circuit breaker open), partial or
    implausible answer leaves the asset at its last good price, marked stale; so does a
    candidate level the price guard is watching. Two requests due at the same instant both
    ask the provider (no lock): that costs one extra upstream call, never a wrong price, and
    the guard counts their answers once.
    """
    by_id = {asset.asset_id: asset for asset in assets}
    if not by_id:
        return {}
    now = timezone.now()
    rows = price_guard.read_last_good(by_id)
    reuse = timedelta(seconds=settings.PRICE_CACHE_SECONDS)
    due = [
        asset for asset_id, asset in by_id.items() if asset_id not in rows or now - rows[asset_id].checked_at >= reuse
    ]
    unanswered: set[str] = set()
    if due:
        refreshed = refresh_quotes(due, known=rows, now=now)
        rows.update(refreshed)
        unanswered = {asset.asset_id for asset in due} - refreshed.keys()
    max_age = timedelta(seconds=settings.PRICE_MAX_AGE_SECONDS)
    return {
        asset_id: row.quote(stale=row.held or asset_id in unanswered or now - row.as_of > max_age)
        for asset_id, row in rows.items()
    }


def get_trade_quote(asset: Asset) -> Quote:
    """A price fit to trade on: fresh, and not held by the price guard; raises PriceUnavailable,
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
    quote the price guard holds), after PriceUnavailable's short default."""
    wait = breaker_for(get_provider().name).seconds_until_probe()
    return math.ceil(wait) if wait > 0 else PriceUnavailable.retry_after


# --- writes ------------------------------------------------------------------------------


def refresh_quotes(
    assets: Sequence[PricedAsset], *, known: Mapping[str, GuardedPrice], now: datetime
) -> dict[str, GuardedPrice]:
    """Ask the provider for ``assets`` (whose rows, read before, are ``known``), have the price
    guard judge and store its answer, record the quotes it accepted in the history and
    announce them (``assets.price_events``).
    Returns the stored rows of the assets the provider answered readably and plausibly; the
    others (provider down or refused by the breaker, asset omitted, price implausible) are
    absent. Takes no lock across the provider call: the guard writes after it."""
    fetched = price_guard.plausible(_fetch(assets))
    if not fetched:
        return {}
    stored, accepted = price_guard.accept(fetched, known=known, now=now)
    price_history.record_quotes(accepted)
    # To the market data streams of every process: a new price only. The provider answers the
    # same quote again until it has a newer one (a processor's pass asks twice, a second
    # process asks as well), and a quote repeated is no new quote.
    announce_prices([quote for quote in accepted if not _already_good(known.get(quote.asset_id), quote)])
    return stored


def _already_good(row: GuardedPrice | None, quote: Quote) -> bool:
    return row is not None and (row.price, row.as_of) == (quote.price, quote.as_of)


def store_quotes(quotes: Iterable[Quote]) -> None:
    """Make ``quotes`` the last good prices as they are, as if the provider had just answered
    them and the guard accepted them, record them in the history and announce them: how
    ``seed_demo``, the benchmarks and the tests set the market. The provider is asked again
    PRICE_CACHE_SECONDS later."""
    quotes = list(quotes)
    if not quotes:
        return
    price_guard.store(quotes, now=timezone.now())
    price_history.record_quotes(quotes)
    announce_prices(quotes)


_next_market_refresh = 0.0


def refresh_market_prices() -> None:
    """Price every active asset once a price may be reused no longer (PRICE_CACHE_SECONDS, at
    most a recording window) per process, for ``process_orders``: the history then has every
    asset while it runs, not only those with resting orders, the guard sees the provider at
    least that often, and the quote stream has a new price that often even when nothing else
    asks for one. A provider that fails records nothing."""
    global _next_market_refresh
    now = time.monotonic()
    if now < _next_market_refresh:
        return
    _next_market_refresh = now + min(settings.PRICE_CACHE_SECONDS, settings.PRICE_RECORD_SECONDS)
    get_quotes(list(Asset.objects.filter(is_active=True)))


# --- the provider, through its circuit breaker -----------------------------------------------


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
