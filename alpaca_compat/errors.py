"""Alpaca's error answers: ``{"code": 40310000, "message": "..."}`` with Alpaca's status codes.

alpaca-py raises ``APIError(response.text)`` for every non-2xx answer and reads ``code`` and
``message`` from that JSON (alpaca/common/exceptions.py), so programs branch on these codes.
The domain errors of our services are translated here; the messages are Alpaca's where a
program might match on them (``insufficient balance for USD (requested: ..., available: ...)``).
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.api import errors as api_errors
from core.api.middleware import NulByteInRequest
from core.exceptions import (
    Conflict,
    DomainError,
    InsufficientAsset,
    InsufficientFunds,
    InvalidRequest,
    PriceUnavailable,
)

# Alpaca's codes: the HTTP status followed by a sub-code.
INVALID = 40010000
INVALID_VALUE = 40010001
UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
NOT_FOUND = 40410000
METHOD_NOT_ALLOWED = 40510000
REQUEST_TOO_LARGE = 41310000
UNPROCESSABLE = 42210000
RATE_LIMITED = 42910000
SERVER_ERROR = 50010000
SERVICE_UNAVAILABLE = 50310000

# The paths Alpaca's shape answers under (portfolio_project/urls.py mounts them): every answer
# there, a 404 for an unknown URL or a 400 Django gives before any view included, is JSON.
ALPACA_PREFIXES = ("/v2/", "/v1beta3/")


class AlpacaError(Exception):
    """An answer this layer gives itself (unsupported feature, unknown symbol, not found)."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message


def unsupported(message: str) -> AlpacaError:
    return AlpacaError(status.HTTP_422_UNPROCESSABLE_ENTITY, UNPROCESSABLE, message)


def invalid(message: str) -> AlpacaError:
    return AlpacaError(status.HTTP_422_UNPROCESSABLE_ENTITY, INVALID, message)


def not_found(message: str) -> AlpacaError:
    return AlpacaError(status.HTTP_404_NOT_FOUND, NOT_FOUND, message)


def bad_request(message: str) -> AlpacaError:
    """A malformed or out-of-range time, date or page token in a query: 400."""
    return AlpacaError(status.HTTP_400_BAD_REQUEST, INVALID, message)


def body(code: int, message: str) -> dict:
    return {"code": code, "message": message}


def _amount(value, currency: str) -> str:
    """USD with cents, quantities without trailing zeros, as Alpaca writes them."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if currency == "USD":
        return f"{number:.2f}"
    text = format(number.normalize(), "f")
    return "0" if number == 0 else text


def _insufficient(error: DomainError, currency: str) -> str:
    details = error.details
    if "required" in details and "available" in details:
        requested, available = _amount(details["required"], currency), _amount(details["available"], currency)
        return f"insufficient balance for {currency} (requested: {requested}, available: {available})"
    return f"insufficient balance for {currency}"


def domain_answer(error: DomainError, *, asset_id: str | None = None) -> tuple[int, dict]:
    """The status and body Alpaca gives for what our service raised."""
    code = getattr(error, "code", None)
    if isinstance(error, InsufficientFunds) or code == InsufficientFunds.code:
        return status.HTTP_403_FORBIDDEN, body(FORBIDDEN, _insufficient(error, "USD"))
    if isinstance(error, InsufficientAsset) or code == InsufficientAsset.code:
        currency = asset_id or error.details.get("asset_id") or "asset"
        return status.HTTP_403_FORBIDDEN, body(FORBIDDEN, _insufficient(error, currency))
    if isinstance(error, PriceUnavailable) or code == PriceUnavailable.code:
        return status.HTTP_503_SERVICE_UNAVAILABLE, body(SERVICE_UNAVAILABLE, error.message)
    if isinstance(error, Conflict) and "status" in error.details:  # not cancelable, not replaceable
        state = error.details.get("status")
        message = f'order is already in "{ALPACA_STATUS.get(state, state)}" state' if state else error.message
        return status.HTTP_422_UNPROCESSABLE_ENTITY, body(UNPROCESSABLE, message)
    if isinstance(error, Conflict) and "client_order_id" in error.details:
        return status.HTTP_422_UNPROCESSABLE_ENTITY, body(INVALID_VALUE, "client_order_id must be unique")
    if isinstance(error, Conflict):
        return status.HTTP_422_UNPROCESSABLE_ENTITY, body(UNPROCESSABLE, error.message)
    if code == "not_found":
        return status.HTTP_404_NOT_FOUND, body(NOT_FOUND, error.message)
    if isinstance(error, InvalidRequest):
        return status.HTTP_422_UNPROCESSABLE_ENTITY, body(INVALID, error.message)
    return status.HTTP_422_UNPROCESSABLE_ENTITY, body(UNPROCESSABLE, error.message)


# Our order statuses as Alpaca names them (docs/DESIGN.md, "Alpaca compatibility").
ALPACA_STATUS = {
    "PENDING": "new",
    "COMPLETED": "filled",
    "CANCELLED": "canceled",
    "EXPIRED": "expired",
    "FAILED": "rejected",
    "REPLACED": "replaced",
    "PARTIALLY_FILLED": "partially_filled",  # shown, never stored: an open order part of which filled
}

_DRF = [
    (drf_exceptions.NotAuthenticated, status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED),
    (drf_exceptions.AuthenticationFailed, status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED),
    (drf_exceptions.PermissionDenied, status.HTTP_403_FORBIDDEN, FORBIDDEN),
    (drf_exceptions.NotFound, status.HTTP_404_NOT_FOUND, NOT_FOUND),
    (drf_exceptions.MethodNotAllowed, status.HTTP_405_METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED),
    (drf_exceptions.Throttled, status.HTTP_429_TOO_MANY_REQUESTS, RATE_LIMITED),
    (drf_exceptions.ParseError, status.HTTP_400_BAD_REQUEST, INVALID),
    (drf_exceptions.UnsupportedMediaType, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, INVALID),
    (drf_exceptions.NotAcceptable, status.HTTP_406_NOT_ACCEPTABLE, INVALID),
]


def validation_message(detail) -> str:
    """DRF's nested validation detail as one line of clauses: ``qty: A valid number is
    required; time_in_force must be day, gtc, opg, cls, ioc or fok, not "x"``."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = validation_message(value)
            parts.append(text if field == "non_field_errors" or text.startswith(f"{field} ") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return "; ".join(validation_message(item) for item in detail)
    return str(detail).rstrip(".")


def exception_handler(exc, context):
    """The views' exception handler: every error in Alpaca's shape."""
    headers = {}
    if isinstance(exc, AlpacaError):
        http_status, payload = exc.http_status, body(exc.code, exc.message)
    elif isinstance(exc, DomainError):
        view = context.get("view")
        http_status, payload = domain_answer(exc, asset_id=getattr(view, "asset_id", None))
        if exc.retry_after is not None:  # a transient refusal: the same request may then succeed
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, drf_exceptions.ValidationError):
        http_status, payload = status.HTTP_422_UNPROCESSABLE_ENTITY, body(INVALID, validation_message(exc.detail))
    elif isinstance(exc, SuspiciousOperation):  # Django refused the body while DRF read it
        http_status, payload = _refused_request(exc)
    elif isinstance(exc, api_errors.DATABASE_UNAVAILABLE):
        return _database_unavailable(context["request"], exc)
    else:
        if isinstance(exc, Http404):
            exc = drf_exceptions.NotFound()
        elif isinstance(exc, PermissionDenied):
            exc = drf_exceptions.PermissionDenied()
        if not isinstance(exc, drf_exceptions.APIException):
            return None  # a real bug: let Django log it and answer 500 (handler500 below)
        match = next(((s, c) for cls, s, c in _DRF if isinstance(exc, cls)), None)
        http_status, code = match or (exc.status_code, exc.status_code * 100000 + 10000)
        message = "request is not authorized" if code == UNAUTHORIZED else str(exc.detail)
        if isinstance(exc, drf_exceptions.Throttled):
            message = "rate limit exceeded"
            if exc.wait is not None:
                headers["Retry-After"] = str(int(exc.wait))
        payload = body(code, message)
    set_rollback()
    return Response(payload, status=http_status, headers=headers)


def _refused_request(exc: SuspiciousOperation | None) -> tuple[int, dict]:
    """What Django refused (``core.api.errors.SUSPICIOUS_REQUESTS`` for /api/v1) in Alpaca's shape."""
    if isinstance(exc, RequestDataTooBig):
        return status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, body(REQUEST_TOO_LARGE, "request body too large")
    if isinstance(exc, TooManyFieldsSent):
        return status.HTTP_400_BAD_REQUEST, body(INVALID, "too many fields in the request")
    if isinstance(exc, NulByteInRequest):
        return status.HTTP_400_BAD_REQUEST, body(INVALID, "the request contains a NUL byte")
    return status.HTTP_400_BAD_REQUEST, body(INVALID, "malformed request")


def _database_unavailable(request, exc: BaseException) -> JsonResponse:
    method, path = request.method, request.path
    api_errors.logger.warning("database unavailable (%s: %s) for %s %s", type(exc).__name__, exc, method, path)
    message = "service unavailable (its database cannot be reached); try again shortly"
    response = JsonResponse(body(SERVICE_UNAVAILABLE, message), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = api_errors.RETRY_AFTER_SECONDS
    return response


def endpoint_not_found(request, *args, **kwargs):
    """Paths under /v2/ and /v1beta3/ that name no endpoint: Alpaca's 404, not Django's page.
    Alpaca's URLs have no trailing slash; one sent with it is told the URL to use."""
    path = request.path_info
    if path.endswith("/") and _names_an_endpoint(path.rstrip("/")):
        url = request.path.rstrip("/")
        message = f"endpoint not found: Alpaca's URLs have no trailing slash: {request.method} {url}"
        return JsonResponse(body(NOT_FOUND, message), status=status.HTTP_404_NOT_FOUND)
    return JsonResponse(body(NOT_FOUND, "endpoint not found"), status=status.HTTP_404_NOT_FOUND)


def _names_an_endpoint(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.func is not endpoint_not_found


# --- Django's error handlers (portfolio_project/urls.py): Alpaca's shape under its paths,
# the API's error shape (or the admin's pages) elsewhere.


def is_alpaca_path(request) -> bool:
    path = request.path_info
    return path.startswith(ALPACA_PREFIXES) or path in ("/v2", "/v1beta3")


def handler400(request, exception=None):
    if not is_alpaca_path(request):
        return api_errors.json_bad_request(request, exception)
    http_status, payload = _refused_request(exception if isinstance(exception, SuspiciousOperation) else None)
    return JsonResponse(payload, status=http_status)


def handler404(request, exception=None):
    if not is_alpaca_path(request):
        return api_errors.json_not_found(request, exception)
    return endpoint_not_found(request)


def handler500(request):
    if not is_alpaca_path(request):
        return api_errors.json_server_error(request)
    exc = sys.exc_info()[1]
    if isinstance(exc, api_errors.DATABASE_UNAVAILABLE):
        return _database_unavailable(request, exc)
    return JsonResponse(body(SERVER_ERROR, "internal server error"), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
