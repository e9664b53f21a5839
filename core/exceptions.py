"""Domain exceptions raised by services. ``core.api.errors.exception_handler`` maps
each ``code`` to its HTTP status and the one error shape of the README ("The API in short").

Numbers in ``details`` are written here, once for every service and both APIs: a service
hands its Decimals over as they are and never formats them itself (``str()`` of a quantity
read from its column is "0E-18" or "0.010000000000000000")."""

from __future__ import annotations

from decimal import Decimal

from core.money import plain, to_cents


class DomainError(Exception):
    code = "domain_error"
    # Whether the Decimals in ``details`` are USD amounts, written with their two decimals
    # ("633.90") as every USD amount is answered; otherwise they are quantities or prices,
    # written without trailing zeros or exponent ("0.01", "0").
    usd_details = False
    # Seconds after which the same request may succeed, for a refusal that is transient
    # (the answer's Retry-After); None for a final answer.
    retry_after: int | None = None

    def __init__(self, message: str, *, details: dict | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = self._written(details or {})
        if retry_after is not None:
            self.retry_after = retry_after

    def _written(self, value):
        if isinstance(value, Decimal):
            return str(to_cents(value)) if self.usd_details else plain(value)
        if isinstance(value, dict):
            return {key: self._written(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._written(item) for item in value]
        return value


class InvalidRequest(DomainError):
    """The request breaks a business rule that needs no lock to check (400)."""

    code = "validation_error"


class PositionNotFound(DomainError):
    """Closing a position the user does not hold (404, like Alpaca's)."""

    code = "not_found"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    usd_details = True


class InsufficientAsset(DomainError):
    code = "insufficient_asset"


class BalanceLimitExceeded(DomainError):
    """The USD balance would pass MAX_USD_BALANCE (422): a deposit, an adjustment or a fill."""

    code = "balance_limit_exceeded"
    usd_details = True


class PriceUnavailable(DomainError):
    """No fresh price to trade on (503). Transient: nothing is stored, and the answer says when
    to retry (``retry_after``: the circuit breaker's time left, or a short default)."""

    code = "price_unavailable"
    retry_after = 2


class Conflict(DomainError):
    """An idempotency key reused with other parameters, or a state change that no longer applies."""

    code = "conflict"


class OrderNotCancellable(Conflict):
    """A cancel (or an expiry) found the order no longer PENDING."""


class OrderNoLongerPending(Conflict):
    """A fill or a replace lost the race for a PENDING order: another worker filled it, or a
    user cancelled or replaced it, after it was read."""
