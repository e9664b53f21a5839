"""The OpenAPI document's error responses.

Every operation documents the errors it can answer, all in the one error shape of the
README ("The API in short"). DRF's own errors (400, 401, 403, 404, 415, 429) follow from each view's setup and
are added by ``ErrorDocumentingAutoSchema`` (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS); the
domain errors of a service (409, 422, 503) are declared per operation with ``error_responses``.

Kept apart from ``core.api.errors``: it is REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS, and
importing drf-spectacular's AutoSchema imports DRF's generic views, so it must not be imported
by a module those views need (see ``core.api.defaults``).
"""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import SAFE_METHODS, AllowAny

from core.api.permissions import OwnerScopedMixin


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable machine-readable code: validation_error, unknown_field, malformed_request, "
        "request_too_large, not_authenticated, permission_denied, not_found, method_not_allowed, conflict, "
        "insufficient_funds, insufficient_asset, balance_limit_exceeded, unsupported_media_type, throttled, "
        "price_unavailable, service_unavailable."
    )
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(
        help_text="Per-field messages for validation errors (unknown_field: one per field); otherwise context or {}."
    )


class ErrorSerializer(serializers.Serializer):
    """The one error shape of every 4xx/5xx answer (README, "The API in short")."""

    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: "validation_error, unknown_field or malformed_request: the request is not valid (a malformed or "
    "out-of-range time, cursor or number included).",
    401: "not_authenticated: no or invalid credentials.",
    403: "permission_denied: e.g. a session login without a CSRF token, or an API key where only a token or a "
    "session may act (API keys, logout, password, deposits and withdrawals).",
    404: "not_found: no such object (or not yours), or no such user.",
    409: "conflict: an idempotency key reused with other parameters, or a state that no longer allows this.",
    413: "request_too_large: the body is larger than the server accepts.",
    415: "unsupported_media_type: the request body's content type is not accepted.",
    422: "insufficient_funds, insufficient_asset or balance_limit_exceeded: the account does not allow this.",
    429: "throttled: too many requests; retry after Retry-After seconds.",
    503: "price_unavailable (no fresh market price to trade at) or service_unavailable (database down).",
}


def _error(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# One real answer per status, so that Swagger UI shows the shape the API sends (it made up
# "additionalProp1" from the schema).
ERROR_EXAMPLES = {
    400: _error("validation_error", "The request is not valid.", {"quantity": ["A valid number is required."]}),
    401: _error(
        "not_authenticated",
        "The Authorization header has no scheme before the key. Send 'Authorization: Token <key>' "
        "(or 'Bearer <key>'), with the key from auth/token/.",
    ),
    403: _error("permission_denied", "CSRF Failed: CSRF token missing."),
    404: _error("not_found", "No such order."),
    409: _error(
        "conflict",
        "client_order_id was already used for a different order.",
        {"client_order_id": "my-order-1", "order_id": "2f0b6f8e-3c1d-4a57-9d43-0c5f1a7e9b21"},
    ),
    413: _error("request_too_large", "The request body is larger than this API accepts."),
    415: _error("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
    422: _error(
        "insufficient_funds",
        "Not enough available USD.",
        {"available": "120.50", "required": "633.90", "order_id": "2f0b6f8e-3c1d-4a57-9d43-0c5f1a7e9b21"},
    ),
    429: _error("throttled", "Request was throttled. Expected available in 30 seconds."),
    503: _error("price_unavailable", "No fresh price for BTC.", {"order_id": "2f0b6f8e-3c1d-4a57-9d43-0c5f1a7e9b21"}),
}


def _error_response(code: int) -> OpenApiResponse:
    example = ERROR_EXAMPLES[code]
    return OpenApiResponse(
        ErrorSerializer,
        description=ERROR_DESCRIPTIONS[code],
        examples=[OpenApiExample(example["error"]["code"], value=example, status_codes=[code])],
    )


ERROR_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "The authentication scheme to use (Token), when the endpoint takes one.",
        }
    },
    429: {
        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."},
        # Sent on every answer a throttle counted (core/api/middleware.py), shown here on the 429.
        "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests allowed in the window."},
        "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Requests left in the window."},
        "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Epoch seconds when the window turns."},
    },
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for ``@extend_schema(responses=...)``: the domain errors an operation may answer."""
    return {code: _error_response(code) for code in codes}


class ErrorDocumentingAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses DRF and this API answer on their own,
    derived from each view's setup: 400 for bodies, filters and cursors, 401 where authentication is
    required, 403 for session-authenticated writes (CSRF), 404 for path parameters and per-user data
    (``?username=``), 415 for bodies, 429 where throttled. Domain errors (409, 422, 503) are declared per
    operation with ``error_responses``."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._implicit_error_codes():
            responses.setdefault(str(code), self._error_response(code))
        for code, response in responses.items():
            if int(code) in ERROR_HEADERS:
                response.setdefault("headers", {}).update(ERROR_HEADERS[int(code)])
        return dict(sorted(responses.items()))

    def _error_response(self, code: int) -> dict:
        return self._get_response_for_code(_error_response(code), str(code))

    def _implicit_error_codes(self) -> list[int]:
        view = self.view
        writes = self.method not in SAFE_METHODS
        has_body = writes and self.get_request_serializer() is not None
        codes = []
        paginated = self._is_list_view() and isinstance(self._get_paginator(), CursorPagination)
        if has_body or self._get_filter_parameters() or paginated:
            codes.append(400)
        if not all(isinstance(permission, AllowAny) for permission in view.get_permissions()):
            codes.append(401)
            if writes and any(isinstance(auth, SessionAuthentication) for auth in view.get_authenticators()):
                codes.append(403)
        owner_scoped = isinstance(view, OwnerScopedMixin) and not writes  # ?username= of no such user
        if "{" in self.path or owner_scoped:
            codes.append(404)
        if has_body:
            codes += [413, 415]
        if view.get_throttles():
            codes.append(429)
        return codes


# drf-spectacular writes a decimal string as ^-?\d{0,I}(?:\.\d{0,F})?$, which also matches "",
# "." and "-": strings the API answers with a 400. Require a digit, before or after the point
# (DRF accepts "5." and ".5"), so the schema says what the API takes.
_DECIMAL_PATTERN = re.compile(r"^\^-\?\\d\{0,(\d+)\}\(\?:\\\.\\d\{0,(\d+)\}\)\?\$$")


def require_a_digit_in_decimal_patterns(result, generator, request, public):
    """A post-processing hook of drf-spectacular (its settings' POSTPROCESSING_HOOKS)."""

    def visit(node):
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and (match := _DECIMAL_PATTERN.match(pattern)):
                whole, fraction = match.groups()
                node["pattern"] = rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{fraction}}})?|\.\d{{1,{fraction}}})$"
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result


class TokenScheme(OpenApiAuthenticationExtension):
    """The token as an HTTP bearer scheme: Swagger UI's "Authorize" then takes the bare key
    and sends ``Authorization: Bearer <key>``, which ``core.api.authentication`` accepts.
    (DRF's own description, an API key header, made users type ``Token `` themselves.)"""

    target_class = "core.api.authentication.TokenAuthentication"
    match_subclasses = True
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            # Markdown: in a code span, Swagger UI shows <key> instead of dropping it as a tag.
            "description": "**Use this one** to try the API here: paste the token from `auth/token/` or "
            "`auth/register/` as it is, without `Token ` before it. It is the README's "
            "`Authorization: Token <key>`; Swagger UI sends it as `Authorization: Bearer <key>`, "
            "which the API takes alike.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    """drf-spectacular's session scheme (priority -1) with a description: nothing to type, and
    only for the browsable API."""

    target_class = "rest_framework.authentication.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "Only for the browsable API (`/api/v1/`): after you log in at `/api-auth/login/`, "
            "the browser sends this cookie by itself, and writes need the page's CSRF token. "
            "Nothing to enter here; in Swagger UI use tokenAuth.",
        }


# The order of Swagger UI's "Authorize" dialog: the README's token first, then API keys for
# programs, then the browsable API's session (drf-spectacular sorts them by name).
SECURITY_SCHEME_ORDER = ("tokenAuth", "apiKeyId", "apiSecretKey", "cookieAuth")


def put_the_token_scheme_first(result, generator, request, public):
    """A post-processing hook of drf-spectacular (its settings' POSTPROCESSING_HOOKS): the
    security schemes in SECURITY_SCHEME_ORDER (any other after them, as generated)."""
    schemes = result.get("components", {}).get("securitySchemes")
    if schemes:
        rank = {name: index for index, name in enumerate(SECURITY_SCHEME_ORDER)}
        result["components"]["securitySchemes"] = dict(
            sorted(schemes.items(), key=lambda item: rank.get(item[0], len(rank)))
        )
    return result


# Examples by decimal places: Swagger UI made up "-331605500823993" from the pattern.
DECIMAL_EXAMPLES = {2: "250.00", 4: "0.01", 12: "63389.3", 18: "0.01"}


class StrictDecimalFieldScheme(OpenApiSerializerFieldExtension):
    """The fields of ``core.api.fields`` as drf-spectacular maps DRF's DecimalField, with a
    real example."""

    target_class = "core.api.fields.StrictDecimalField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if self.target.decimal_places in DECIMAL_EXAMPLES:
            schema["example"] = DECIMAL_EXAMPLES[self.target.decimal_places]
        return schema
