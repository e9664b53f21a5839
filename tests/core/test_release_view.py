"""An API request leaves nothing for the cyclic garbage collector: once the answer is rendered,
``ReleaseViewMiddleware`` cuts the references by which the view, DRF's request and the answer
held one another, so they are freed as the answer leaves (docs/PERFORMANCE.md, "Garbage").
Filtered lists still leave some: django-filter's form and its bound fields refer to each other,
and through the filter set to the request."""

from __future__ import annotations

import gc
import io
import json
from collections import Counter

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.services import create_api_key, issue_token
from core.api.middleware import ReleaseViewMiddleware

pytestmark = pytest.mark.django_db(transaction=True)  # the requests commit, as in the server

ORDER = json.dumps({"asset_id": "BTC", "order_type": "BUY", "quantity": "0.001"}).encode()
ALPACA_ORDER = json.dumps(
    {"symbol": "BTC/USD", "qty": "0.001", "side": "buy", "type": "market", "time_in_force": "gtc"}
).encode()


def call(handler: WSGIHandler, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> str:
    """One request through Django's whole middleware chain and the view, in this thread (the
    server's ASGI worker runs the same chain on a thread of its own)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }
    statuses = []
    chunks = handler(environ, lambda status, _headers: statuses.append(status))
    b"".join(chunks)
    chunks.close()
    return statuses[0].split()[0]


def cyclic_garbage(requests) -> Counter:
    """The objects that ``requests()`` left in reference cycles, by type."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        requests()
        gc.collect()
        return Counter(type(o) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def of_a_request(garbage: Counter) -> list[str]:
    # Only what a request builds: the test's own machinery may leave cycles of its own.
    kinds = (Request, APIView, HttpRequest, HttpResponse)
    return sorted(t.__qualname__ for t in garbage if issubclass(t, kinds))


def test_an_order_and_the_portfolio_leave_no_request_in_reference_cycles(user, btc_at_50k):
    # given
    handler = WSGIHandler()
    headers = {"Authorization": f"Token {issue_token(user=user).key}"}
    key = create_api_key(user=user, name="bot")
    alpaca = {"APCA-API-KEY-ID": key.api_key.key_id, "APCA-API-SECRET-KEY": key.secret_key}

    def requests() -> None:
        assert call(handler, "POST", "/api/v1/orders/", headers, ORDER) == "201"
        assert call(handler, "GET", "/api/v1/portfolio/", headers) == "200"
        assert call(handler, "POST", "/v2/orders", alpaca, ALPACA_ORDER) == "200"

    requests()  # warm: what is built once

    # when

    garbage = cyclic_garbage(requests)

    # then
    assert of_a_request(garbage) == []


def test_without_the_middleware_the_same_order_leaves_its_view_in_cycles(user, btc_at_50k, settings):
    # given: the test above could not fail if nothing here made cycles
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith(ReleaseViewMiddleware.__name__)]
    handler = WSGIHandler()
    headers = {"Authorization": f"Token {issue_token(user=user).key}"}
    assert call(handler, "POST", "/api/v1/orders/", headers, ORDER) == "201"

    # when
    garbage = cyclic_garbage(lambda: call(handler, "POST", "/api/v1/orders/", headers, ORDER))

    # then
    assert {"Request", "Response", "OrderViewSet"} <= set(of_a_request(garbage))
