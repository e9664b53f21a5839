"""API throttles as fixed-window counters, the client address they key on, and the login
throttle every login path shares.

DRF's own throttles keep the time of every request of the window in the cache and read,
trim and re-write that whole list on each request: at 1,200 orders a minute that is a list
of 1,200 floats pickled twice per order. A counter per (client, window) costs one atomic
``incr`` (Redis, or the local-memory cache's lock). The price is the usual fixed-window
edge: a client may burst up to twice the rate across a window boundary.

Throttles fail open (docs/DESIGN.md, "Faults"): when the cache raises or answers nothing (django-redis
with ``IGNORE_EXCEPTIONS`` returns None), the request is let through. A throttle protects
the service; a cache outage must not become an outage of the service.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle, UserRateThrottle

from core.cache import incr_counters

logger = logging.getLogger(__name__)


def _cache_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]  # sockets: refused, reset, timed out
    try:
        from redis.exceptions import RedisError

        errors.append(RedisError)
    except ImportError:  # pragma: no cover - redis is in requirements.txt
        pass
    try:
        from django_redis.exceptions import ConnectionInterrupted

        errors.append(ConnectionInterrupted)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


CACHE_ERRORS = _cache_errors()


# --- The client's address ---------------------------------------------------------------


def client_address(request) -> str:
    """The address the request came from, as far as it can be believed.

    ``X-Forwarded-For`` is written by whoever sends the request: only the entries appended by
    our own proxies are true. With ``TRUSTED_PROXY_COUNT = n`` (n proxies in front, each
    appending the address it was connected from), the n-th entry from the right is the one
    the outermost trusted proxy saw; anything left of it is the client's own claim. With 0
    (the default: clients connect directly), the header is ignored and the socket's address
    is used, so a forged header resets no counter. An IPv6 client is keyed by its /64, the
    block one customer line gets, so that it cannot walk through its own addresses.
    """
    meta = request.META
    address = meta.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [entry.strip() for entry in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [entry for entry in forwarded if entry]
        if forwarded:
            address = forwarded[-min(proxies, len(forwarded))]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        # Not an address (a misconfigured proxy count, or a unix socket): the socket's peer.
        return meta.get("REMOTE_ADDR", "") or "unknown"
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network((parsed, 64), strict=False).network_address) + "/64"


# --- Fixed-window counting ----------------------------------------------------------------


def _record_rate_limit(request, limit: int, remaining: int, reset: int) -> None:
    """Keep the tightest limit met by this request for ``RateLimitHeadersMiddleware``
    (X-RateLimit-Limit / -Remaining / -Reset, as Alpaca and GitHub send them)."""
    http_request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    current = getattr(http_request, "rate_limit", None)
    if current is None or remaining < current[1]:
        http_request.rate_limit = (limit, remaining, reset)


class FixedWindowMixin:
    def get_ident(self, request):
        return client_address(request)

    def windows(self, request, view) -> list[tuple[int, int, str]]:
        """``(limit, seconds, cache key)`` of each counter this request counts in."""
        if self.rate is None:
            return []
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return []
        return [(self.num_requests, self.duration, self.key)]

    def allow_request(self, request, view):
        windows = self.windows(request, view)
        if not windows:
            return True
        now = self.timer()
        starts = [int(now // seconds) for _limit, seconds, _key in windows]
        counters = [
            (f"{key}:{start}", seconds + 1) for (_limit, seconds, key), start in zip(windows, starts, strict=True)
        ]
        try:
            # The backend itself, not DRF's ``cache`` (django.core.cache.cache, a proxy of it),
            # so that incr_counters can tell Redis from another cache.
            counts = incr_counters(caches["default"], counters)
        except CACHE_ERRORS as error:
            logger.warning("throttle %s not counted, the cache failed: %r", type(self).__name__, error)
            counts = None
        if counts is None:
            return True  # the cache is down: fail open, and claim no numbers we do not have
        allowed, self.wait_seconds = True, 0.0
        for (limit, seconds, _key), start, count in zip(windows, starts, counts, strict=True):
            _record_rate_limit(request, limit, max(0, limit - count), (start + 1) * seconds)
            if count > limit:
                allowed, self.wait_seconds = False, max(self.wait_seconds, seconds - now % seconds)
        return allowed

    def wait(self):
        return self.wait_seconds


class UserThrottle(FixedWindowMixin, UserRateThrottle):
    """THROTTLE_USER_RATE per user (per client address when anonymous)."""


class ScopedThrottle(FixedWindowMixin, ScopedRateThrottle):
    """The rate of the view's ``throttle_scope`` (THROTTLE_AUTH_RATE, THROTTLE_ORDER_RATE),
    per user, or per client address when anonymous (registration)."""

    def windows(self, request, view):
        # As ScopedRateThrottle: the scope, hence the rate, is only known once the view is.
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return []
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().windows(request, view)


class OrderPlacementThrottle(ScopedThrottle):
    """THROTTLE_ORDER_RATE applies to the requests that change orders (place, replace, cancel,
    close a position): the methods a view lists in ``order_placing_methods``, POST unless it
    says otherwise (Alpaca replaces with PATCH, cancels and closes with DELETE). Reads only
    count against the user rate."""

    def windows(self, request, view):
        placing = getattr(view, "order_placing_methods", ("POST",))
        return super().windows(request, view) if request.method in placing else []


class UserAndOrderThrottle(UserThrottle):
    """UserThrottle and OrderPlacementThrottle (on a view whose ``throttle_scope`` is
    ``orders``) counted in one round trip to the cache instead of two."""

    def windows(self, request, view):
        return super().windows(request, view) + OrderPlacementThrottle().windows(request, view)


class AnonymousMarketDataThrottle(FixedWindowMixin, SimpleRateThrottle):
    """THROTTLE_ANON_MARKET_RATE per client address for callers without a key: market data is
    open to anyone, as Alpaca's crypto data is, so anonymous callers get a tight allowance of
    their own, not the user rate every account has. Callers with a key are not counted here."""

    scope = "anon_market"

    def get_cache_key(self, request, view):
        if request.user is not None and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class MarketDataThrottle(UserThrottle):
    """UserThrottle and, for anonymous callers, AnonymousMarketDataThrottle, counted in one
    round trip to the cache."""

    def windows(self, request, view):
        return super().windows(request, view) + AnonymousMarketDataThrottle().windows(request, view)


# --- Logins -------------------------------------------------------------------------------


class LoginAddressThrottle(FixedWindowMixin, SimpleRateThrottle):
    """THROTTLE_AUTH_RATE login attempts per client address, whatever the username."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(FixedWindowMixin, SimpleRateThrottle):
    """THROTTLE_LOGIN_USERNAME_RATE login attempts per username, from any number of addresses.

    This is what stops a guesser with many addresses. Its cost is known and accepted: the
    account's owner cannot log in with a password either while someone else spends the
    username's allowance (tokens and API keys in use keep working).
    """

    scope = "login_username"

    def __init__(self, username: str):
        super().__init__()
        self.username = username

    def get_cache_key(self, request, view):
        # Hashed: a username may hold characters a cache key may not (memcached: spaces).
        digest = hashlib.sha256(self.username.casefold().encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}


def check_login_attempt(request, username: str) -> float | None:
    """Count one login attempt against the client address and the username; None when it
    may go on, else the seconds to wait. Every login path calls this before checking the
    password (the API's ``auth/token/``, the browsable API's and the admin's login forms),
    so they share one allowance. Every attempt counts, good or bad: counting failures only
    would need a read before the password check and a write after it, and guessers racing
    between the two would get past the limit."""
    throttles = (LoginAddressThrottle(), LoginUsernameThrottle(username))
    waits = [throttle.wait() for throttle in throttles if not throttle.allow_request(request, None)]
    return max(waits) if waits else None
