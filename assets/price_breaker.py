"""A circuit breaker in front of the price provider (docs/DESIGN.md, "Prices and the price guard").

Without it a provider that is down costs every request that needs a price the whole
deadline, and nothing remembers the failure. With it, after PRICE_BREAKER_FAILURES calls
in a row failed, the breaker *opens*: callers get no fresh price at once (orders answer 503
``price_unavailable``, the portfolio shows last known prices flagged stale) without waiting.
After PRICE_BREAKER_RESET_SECONDS one caller, and only one, is let through as a *probe*
(half-open); its success closes the breaker, its failure opens it for another period.

State is per process, kept in memory so that the breaker works when the shared cache is down
too; ``assets.prices`` also publishes an opening through the cache, so that the other server
processes adopt it (``open_elsewhere``) instead of each paying PRICE_BREAKER_FAILURES deadlines
to learn the same thing. ``snapshot()`` is what ``health/`` shows.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from core.per_key import PerKey

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSnapshot:
    state: str
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None


class CircuitBreaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0  # monotonic
        self._probe_started_at = 0.0  # monotonic
        self._last_success_at: datetime | None = None
        self._last_failure_at: datetime | None = None
        self._last_error: str | None = None

    def allow(self) -> bool:
        """May this caller ask the provider now? When it returns True the caller must report
        the outcome with ``record_success`` or ``record_failure``."""
        now = time.monotonic()
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and now - self._opened_at >= settings.PRICE_BREAKER_RESET_SECONDS:
                self._state = HALF_OPEN
                self._probe_started_at = now
                return True
            # A probe that never reported (its thread died) must not keep the breaker half-open
            # forever: after twice the deadline another caller probes.
            if self._state == HALF_OPEN and now - self._probe_started_at > 2 * settings.PRICE_DEADLINE_SECONDS:
                self._probe_started_at = now
                return True
            return False

    def record_success(self) -> bool:
        """Returns True when this success closed a breaker that was not closed (a probe's)."""
        with self._lock:
            was_closed = self._state == CLOSED
            self._state = CLOSED
            self._failures = 0
            self._last_success_at = timezone.now()
            return not was_closed

    def record_failure(self, error: str) -> bool:
        """Returns True when this failure opened the breaker."""
        with self._lock:
            self._failures += 1
            self._last_failure_at = timezone.now()
            self._last_error = error
            if self._state == HALF_OPEN or self._failures >= settings.PRICE_BREAKER_FAILURES:
                self._state = OPEN
                self._opened_at = time.monotonic()
                return True
            return False

    def open_elsewhere(self, error: str, *, seconds_left: float) -> None:
        """Another process opened its breaker: open this one too, to probe when that one does."""
        with self._lock:
            if self._state != CLOSED:
                return
            self._state = OPEN
            self._opened_at = time.monotonic() - settings.PRICE_BREAKER_RESET_SECONDS + max(0.0, seconds_left)
            self._last_failure_at = timezone.now()
            self._last_error = f"{error} (seen by another server process)"

    def seconds_until_probe(self) -> float:
        """How long until ``allow`` lets a caller ask the provider again: 0 while closed, the
        rest of the open period, or of a half-open probe's time. A refused caller's Retry-After."""
        now = time.monotonic()
        with self._lock:
            if self._state == OPEN:
                return max(0.0, settings.PRICE_BREAKER_RESET_SECONDS - (now - self._opened_at))
            if self._state == HALF_OPEN:
                return max(0.0, 2 * settings.PRICE_DEADLINE_SECONDS - (now - self._probe_started_at))
            return 0.0

    @property
    def closed(self) -> bool:
        return self._state == CLOSED

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            return BreakerSnapshot(
                state=self._state,
                consecutive_failures=self._failures,
                last_success_at=self._last_success_at,
                last_failure_at=self._last_failure_at,
                last_error=self._last_error,
            )


breaker_for: PerKey[CircuitBreaker] = PerKey(lambda provider_name: CircuitBreaker())
