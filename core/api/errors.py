"""What every API endpoint shares: the one error shape and its status codes, owner scoping,
and the cheap flat serializer. (The default parser and paginator are in ``drf_defaults``.)

Every error answer is ``{"error": {"code", "message", "details"}}`` with a stable code
(SPEC section 6). Domain exceptions from services carry their code; DRF's and Django's
own exceptions are translated here, so views never build error bodies themselves.
"""

from __future__ import annotations

import logging
import sys
from operator import attrgetter

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone as dj_timezone
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import ISO_8601
from rest_framework.settings import api_settings as drf_settings
from rest_framework.views import set_rollback

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


def error_body(code: str, message: str, details: dict | list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: map any known exception to the one error shape."""
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=DOMAIN_STATUS.get(exc.code, 400))
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return database_unavailable(context["request"], exc)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if not isinstance(exc, drf_exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), "error")
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, drf_exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = "The request is not valid."
    else:
        details = {}
        message = str(exc.detail)
    status_code = exc.status_code
    if code == "not_authenticated":
        status_code = status.HTTP_401_UNAUTHORIZED
    set_rollback()
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def json_not_found(request, exception=None):
    """handler404: API paths outside DRF views (e.g. /api/v1/nope/) answer in the error
    shape; everything else (the admin) keeps Django's HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


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


class OwnerScopedMixin:
    """Views whose data belongs to one user: the requester, or for staff the user named by
    ``?username=``. Anyone else's data is 404, never 403 (SPEC section 6)."""

    def target_user(self):
        request = self.request
        username = request.query_params.get("username")
        if not username or username == request.user.get_username():
            return request.user
        if not request.user.is_staff:
            raise drf_exceptions.NotFound("No such user.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise drf_exceptions.NotFound("No such user.")
        return user


class FlatReadSerializer(serializers.Serializer):
    """A read-only serializer of flat fields that renders many rows cheaply.

    DRF renders each field of each row through generic attribute lookup and a fresh decimal
    context: for a portfolio of 50 holdings that was 2.7 ms, more than the rest of the
    request. The declared fields stay the one description (and the OpenAPI schema); this
    renders them through a plan built once per class: an attribute getter and a formatter
    per field, with DRF's own output for every value (decimals as fixed-point strings at the
    field's places, datetimes as ISO 8601).
    """

    def to_representation(self, instance):
        plan = type(self).__dict__.get("_render_plan")
        if plan is None:
            plan = type(self)._render_plan = [
                (name, attrgetter(field.source), _formatter(field)) for name, field in self.fields.items()
            ]
        return {name: None if (value := get(instance)) is None else fmt(value) for name, get, fmt in plan}


def _formatter(field):
    if isinstance(field, serializers.DecimalField):
        places = field.decimal_places
        return lambda value: f"{value:.{places}f}"
    if isinstance(field, serializers.BooleanField):
        return bool
    if isinstance(field, serializers.CharField):
        return str
    if isinstance(field, serializers.DateTimeField) and getattr(field, "format", DATETIME_FORMAT) in (None, ISO_8601):
        # DRF's ISO 8601 rendering, without looking up the active time zone per value (the
        # project never activates one): the value in TIME_ZONE, "+00:00" written "Z".
        zone = dj_timezone.get_default_timezone()
        return lambda value: _iso_8601(value.astimezone(zone))
    return field.to_representation  # anything else: DRF's own rendering


DATETIME_FORMAT = drf_settings.DATETIME_FORMAT


def _iso_8601(value) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
