"""Domain exceptions raised by services. ``core.api.errors.exception_handler`` maps
each ``code`` to its HTTP status and the one error shape of SPEC section 6."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(DomainError):
    """The request breaks a business rule that needs no lock to check (400)."""

    code = "validation_error"


class PositionNotFound(DomainError):
    """Closing a position the user does not hold (404, like Alpaca's)."""

    code = "not_found"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"


class InsufficientAsset(DomainError):
    code = "insufficient_asset"


class BalanceLimitExceeded(DomainError):
    """The USD balance would pass MAX_USD_BALANCE (422): a deposit, an adjustment or a fill."""

    code = "balance_limit_exceeded"


class PriceUnavailable(DomainError):
    code = "price_unavailable"


class Conflict(DomainError):
    """An idempotency key reused with other parameters, or a state change that no longer applies."""

    code = "conflict"


class OrderNotCancellable(Conflict):
    """A cancel (or an expiry) found the order no longer PENDING."""


class OrderNoLongerPending(Conflict):
    """A fill or a replace lost the race for a PENDING order: another worker filled it, or a
    user cancelled or replaced it, after it was read."""
