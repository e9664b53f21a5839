"""What every API endpoint shares: the one error shape and its status codes, owner scoping,
(The default parser and paginator are in ``defaults``, the serializer bases in
``serializers``.)

Every error answer is ``{"error": {"code", "message", "details"}}`` with a stable code
(README, "The API in short"). Domain exceptions from services carry their code; DRF's and Django's
own exceptions are translated here, so views never build error bodies themselves.
"""

from __future__ import annotations

import logging
import sys

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.api.authentication import HOW as HOW_TO_AUTHENTICATE
from core.api.serializers import UNKNOWN_FIELD
from core.exceptions import DomainError

logger = logging.getLogger("core.api")

# The database is down, restarting or unreachable (psycopg cannot connect, or the server cut
# the connection): not a bug, and the answer is "try again shortly", not a 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE_MESSAGE = "The service is unavailable (its database cannot be reached); try again shortly."
RETRY_AFTER_SECONDS = "2"

DOMAIN_STATUS = {
    "validation_error": status.HTTP_400_BAD_REQUEST,
    "not_found": status.HTTP_404_NOT_FOUND,
    "insufficient_funds": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "insufficient_asset": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "balance_limit_exceeded": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "price_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "conflict": status.HTTP_409_CONFLICT,
}

DRF_CODES = [
    (drf_exceptions.ValidationError, "validation_error"),
    (drf_exceptions.ParseError, "malformed_request"),
    (drf_exceptions.NotAuthenticated, "not_authenticated"),
    (drf_exceptions.AuthenticationFailed, "not_authenticated"),
    (drf_exceptions.PermissionDenied, "permission_denied"),
    (drf_exceptions.NotFound, "not_found"),
    (drf_exceptions.MethodNotAllowed, "method_not_allowed"),
    (drf_exceptions.NotAcceptable, "not_acceptable"),
    (drf_exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (drf_exceptions.Throttled, "throttled"),
]


class RequestTooLarge(drf_exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than this API accepts."
    default_code = "request_too_large"


# Django refuses these while DRF parses the body; left alone they reach Django's handler400,
# an HTML page, under /api/ (docs/DESIGN.md, "Input").
SUSPICIOUS_REQUESTS = [
    (RequestDataTooBig, lambda exc: RequestTooLarge()),
    (TooManyFieldsSent, lambda exc: drf_exceptions.ParseError("The request has too many fields.")),
    (SuspiciousOperation, lambda exc: drf_exceptions.ParseError("The request is malformed.")),
]


def error_body(code: str, message: str, details: dict | list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: map any known exception to the one error shape."""
    if isinstance(exc, DomainError):
        set_rollback()
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        body = error_body(exc.code, exc.message, exc.details)
        return Response(body, status=DOMAIN_STATUS.get(exc.code, 400), headers=headers)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return database_unavailable(context["request"], exc)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        exc = next(translate(exc) for cls, translate in SUSPICIOUS_REQUESTS if isinstance(exc, cls))
    if not isinstance(exc, drf_exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), None) or exc.default_code
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, drf_exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = "The request is not valid."
        unknown = _unknown_fields(details)
        if unknown:
            code, message = UNKNOWN_FIELD, f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}."
    elif isinstance(exc, drf_exceptions.NotAuthenticated):
        details, message = {}, f"{exc.detail} {HOW_TO_AUTHENTICATE}"
    elif code == "method_not_allowed":
        details = {"allowed": _allowed_methods(context)}
        message = f"{exc.detail} Allowed: {', '.join(details['allowed'])}."
    else:
        details = {}
        message = str(exc.detail)
    status_code = exc.status_code
    if code == "not_authenticated":
        status_code = status.HTTP_401_UNAUTHORIZED
    set_rollback()
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def _unknown_fields(details: dict) -> list[str]:
    """The names of a body's undeclared fields when those are all that is wrong with it
    (``core.api.serializers.InputSerializer`` refuses them before any other check)."""
    firsts = [errors[0] if isinstance(errors, list) and errors else None for errors in details.values()]
    return list(details) if firsts and all(getattr(e, "code", None) == UNKNOWN_FIELD for e in firsts) else []


def _allowed_methods(context) -> list[str]:
    view = context.get("view")
    return [method for method in getattr(view, "allowed_methods", []) if method != "OPTIONS"]


def json_bad_request(request, exception=None):
    """handler400: a request Django refused before any view (a malformed or oversized body
    read outside DRF, a disallowed host) answers in the error shape under /api/."""
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(error_body("request_too_large", RequestTooLarge.default_detail), status=413)
        return JsonResponse(error_body("malformed_request", "The request is malformed."), status=400)
    return defaults.bad_request(request, exception)


def json_not_found(request, exception=None):
    """handler404: API paths outside DRF views (e.g. /api/v1/nope/) answer in the error
    shape; everything else (the admin) keeps Django's HTML page."""
    if request.path.startswith("/api/"):
        if not request.path.endswith("/") and _resolves(request.path_info + "/"):
            hint = f"{request.path}/"
            message = f"Not found. API URLs end with a slash: {request.method} {hint}"
            return JsonResponse(error_body("not_found", message, {"hint": hint}), status=404)
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def database_unavailable(request, exc: BaseException) -> HttpResponse:
    """503 ``service_unavailable``: in the error shape under /api/, a plain page elsewhere."""
    logger.warning("database unavailable (%s: %s) for %s %s", exc.__class__.__name__, exc, request.method, request.path)
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body("service_unavailable", DATABASE_UNAVAILABLE_MESSAGE), status=503)
    else:
        response = HttpResponse(DATABASE_UNAVAILABLE_MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def json_server_error(request):
    # Django calls handler500 inside its except block: a database outage met outside any
    # view (the session middleware saving a session) is still a 503, not a 500.
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return database_unavailable(request, exc)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)
