"""What a process learns and keeps from one request to the next, forgotten between tests: the
price providers' circuit breakers and what the cache knows of its servers' outages."""

from __future__ import annotations

from assets.price_breaker import breaker_for
from core.cache import outage_for


def reset_breakers() -> None:
    """Every provider's circuit breaker starts closed again, with no history."""
    breaker_for.clear()


def forget_outages() -> None:
    """Every cache server counts as never having failed in this process."""
    for outage in outage_for.values():
        outage.reset()
