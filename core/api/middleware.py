"""Request guards: a NUL byte is refused before any view sees it, and a POST to an API URL
without its trailing slash is answered, not redirected (``CommonMiddleware``).

NUL bytes:

PostgreSQL text cannot hold NUL (0x00), so psycopg raises DataError for any query that
carries one: a 500. Request bodies are safe (DRF's and Django's form CharFields refuse NUL),
but URL segments (``/api/v1/assets/BTC%00/``), query strings (admin filters) and headers (a
token, a session cookie) reach lookups unchecked. No legitimate request contains one, so
it is answered 400 here, once, rather than guarded in every lookup.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware import common as django_common
from django.urls import get_resolver, get_urlconf

from core.api.errors import DATABASE_UNAVAILABLE, database_unavailable, error_body

NUL = "\x00"
MESSAGE = "The request contains a NUL byte."


class ReleaseViewMiddleware:
    """Once a DRF answer is rendered, its view, DRF's request and the answer hold one another:
    the viewset's actions bound to it, ``parser_context`` and ``renderer_context``. That held
    ~88 objects a request in reference cycles, which only the cyclic garbage collector frees;
    its collections then scanned every request in flight and, in a stream worker, every
    connection (docs/PERFORMANCE.md, "Garbage"). Cut here, they are freed as the answer leaves.
    First in MIDDLEWARE, so that nothing after it reads the view; a streamed answer, not rendered
    yet, keeps its references."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        context = getattr(response, "renderer_context", None)
        if context and getattr(response, "is_rendered", False):
            response.renderer_context = None
            api_request, view = context.get("request"), context.get("view")
            if api_request is not None:
                api_request.parser_context = None
            if view is not None:
                view.__dict__.clear()
        return response


class NulByteInRequest(SuspiciousOperation):
    """What ``RejectNulBytesMiddleware`` hands the URLconf's handler400 outside /api/."""


def _carries_nul(request: HttpRequest) -> bool:
    meta = request.META
    if NUL in request.path_info or "%00" in meta.get("QUERY_STRING", "") or NUL in meta.get("QUERY_STRING", ""):
        return True
    return any(NUL in value for key, value in meta.items() if key.startswith("HTTP_") and isinstance(value, str))


class RejectNulBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _carries_nul(request):
            if request.path_info.startswith("/api/"):
                return JsonResponse(error_body("malformed_request", MESSAGE), status=400)
            # Elsewhere as the URLconf's handler400 answers: Alpaca's shape under /v2, a page in the admin.
            return get_resolver(get_urlconf()).resolve_error_handler(400)(request, NulByteInRequest(MESSAGE))
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A database outage met by a view outside DRF (the admin, the browsable API's login)
    answers 503, in the error shape under /api/; DRF views get the same from the exception
    handler (core/api/errors.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return database_unavailable(request, exception)
        return None


class CommonMiddleware(django_common.CommonMiddleware):
    """Django's CommonMiddleware, except that under /api/ only GET and HEAD are redirected to
    the URL with a trailing slash. A redirected POST arrives as a GET (or not at all), and
    Django answered it with an empty 301; ``core.api.errors.json_not_found`` answers it
    instead, in the error shape, naming the URL to use."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if request.path_info.startswith("/api/") and request.method not in ("GET", "HEAD"):
            return False
        return super().should_redirect_with_slash(request)


class RateLimitHeadersMiddleware:
    """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (epoch seconds, when the window
    turns) on every answer a throttle counted, as Alpaca and GitHub send them, so a client
    can pace itself before it meets a 429. The throttles leave the tightest of their numbers
    on the request (``core.api.throttles``); nothing is read from the cache here."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        rate_limit = getattr(request, "rate_limit", None)
        if rate_limit is not None:
            limit, remaining, reset = rate_limit
            response["X-RateLimit-Limit"] = str(limit)
            response["X-RateLimit-Remaining"] = str(remaining)
            response["X-RateLimit-Reset"] = str(reset)
        return response


# The API's paths: every view under them is DRF's, authenticated by REST_FRAMEWORK's classes
# (or Alpaca's key alone), and the browsable API's login and the admin are elsewhere.
API_PATHS = ("/api/", "/v2/", "/v1beta3/")


def carries_api_credentials(request: HttpRequest) -> bool:
    """An API request that brings its own credentials: one of ``API_CREDENTIAL_HEADERS`` (the
    token's Authorization header, the API key's id), not empty. The token or the key decides
    who it is, or it is a 401: DRF never reaches the session for it (the token class answers
    any non-empty Authorization header, the key class any key id), so the session, the user
    it holds and its messages are never read."""
    meta = request.META
    return any(meta.get(header) for header in settings.API_CREDENTIAL_HEADERS) and request.path_info.startswith(
        API_PATHS
    )


class _BrowserOnly:
    """Runs the middleware it is mixed into for every request but one that carries API
    credentials, which passes straight through (about a tenth of a millisecond of CPU an
    order: a session store, a lazy user, a message storage built and never read). A browser
    with a session cookie on the browsable API, the admin and the login pages get all of it."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if carries_api_credentials(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_BrowserOnly, sessions_middleware.SessionMiddleware):
    pass


class AuthenticationMiddleware(_BrowserOnly, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, messages_middleware.MessageMiddleware):
    pass
