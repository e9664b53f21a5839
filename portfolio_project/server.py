"""How the service is served (docs/DESIGN.md, "Serving"): gunicorn manages the processes, and
each worker runs uvicorn's event loop, so that a client that sends its request slowly, or never
finishes it, holds a coroutine and a socket rather than a worker. ``make run`` and the README's
production recipe both serve this way:

    gunicorn portfolio_project.asgi:application --worker-class portfolio_project.server.Worker --workers 3

Django's sync views run on a few threads per worker (portfolio_project/asgi.py); WebSocket
streams share the port. On top of uvicorn's defaults (uvloop, httptools), a worker facing
clients directly needs what uvicorn leaves out:

- a deadline for a request's headers, from the connection's first byte or, between requests on
  a kept-alive connection, from the next request's first byte (``HTTP_HEADER_TIMEOUT``, 10 s),
  and one for its body once the headers are in (``HTTP_BODY_TIMEOUT``, 30 s): without them an
  idle or dripping socket stays open for as long as the client likes, and enough of them use up
  the process's file descriptors. The client gets a 408 and the connection is closed;
- a bound on the headers' size (``MAX_HEADER_BYTES``): httptools buffers headers without one;
- a bound on a body's size (``MAX_BODY_BYTES``, 10 MB): Django's ASGI handler reads a body whole,
  spooling it to a temporary file, before it looks at its size (Django's own limit,
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``, 2.5 MB, still answers the bodies below this one);
- gunicorn's ``--keep-alive`` (2 s) for idle kept-alive connections, and its graceful timeout
  for in-flight requests at shutdown;
- as many open files as the system allows the process (each connection is one);
- the client address as the socket saw it: uvicorn's proxy-header rewriting is off, as the app
  decides whom to believe (``TRUSTED_PROXY_COUNT``, ``BEHIND_TLS_PROXY``).

No limit on concurrent connections (uvicorn's ``limit_concurrency``): it would count idle
sockets too, and answer real requests 503 while a slow client holds them.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import environ
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn_worker import UvicornWorker

# Read from the environment (and the project's .env, as the settings read it), as gunicorn loads
# this module before Django's settings exist.
environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)
HEADER_TIMEOUT = float(os.environ.get("HTTP_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("HTTP_BODY_TIMEOUT", "30"))
STREAM_COMPRESSION = environ.Env().bool("STREAM_COMPRESSION", default=False)
# The request line and every header of one request: gunicorn's own limits allow about as much
# (a 4 KB request line, 100 fields), nginx's default 32 KB.
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 10 * 2**20
# Codes and messages of the API's error shape (core/api/errors.py), for the /api/ paths.
HEADERS_TOO_LARGE = ("malformed_request", "The request's headers are larger than this server accepts.")
BODY_TOO_LARGE = ("request_too_large", "The request body is larger than this API accepts.")


def _answer_and_close(transport, status: int, message: bytes, content_type: bytes = b"text/plain") -> None:
    if transport.is_closing():
        return
    transport.write(
        b"".join(
            [
                STATUS_LINE[status],
                b"content-type: " + content_type + b"; charset=utf-8\r\n",
                b"content-length: " + str(len(message)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
                message,
            ]
        )
    )
    transport.close()


def _too_large(content_length: bytes) -> bool:
    return content_length.strip().isdigit() and int(content_length) > MAX_BODY_BYTES


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools, with deadlines for a request's headers and
    body and bounds on their sizes."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = None
        self._header_bytes = 0
        self._reading_headers = True  # the bytes now arriving are a request's headers
        self._body_bytes = 0
        self._refused = False  # answered 413: whatever else arrives is not read
        self._arm(HEADER_TIMEOUT)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._reading_headers and not self._refused and not self.transport.is_closing():
            # Headers still incomplete after these bytes: what they hold so far is bounded too.
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, HEADERS_TOO_LARGE)

    # httptools' callbacks, in the order a request's parts arrive.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        if self._deadline is None:  # a kept-alive connection's next request: its own deadline
            self._arm(HEADER_TIMEOUT)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._reading_headers = False
        self._header_bytes = 0
        self._body_bytes = 0
        # Refused before the app starts: it never sees the request.
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > MAX_HEADER_BYTES:
            self._refuse(431, HEADERS_TOO_LARGE)
            return
        if any(name == b"content-length" and _too_large(value) for name, value in self.headers):
            self._refuse(413, BODY_TOO_LARGE)
            return
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope and self.cycle.more_body:
            self._arm(BODY_TIMEOUT)

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:  # a chunked body, whose size no header announced
            self._refuse(413, BODY_TOO_LARGE)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        # Until the next request's first byte, uvicorn's keep-alive timeout alone applies.
        self._disarm()
        self._reading_headers = True
        super().on_message_complete()

    def _refuse(self, status: int, reason: tuple[str, str]) -> None:
        """Answer ``status`` (in the API's error shape under /api/) and read nothing more."""
        self._refused = True
        self._disarm()
        code, message = reason
        if self.cycle is not None and self.cycle.scope is self.scope and self.cycle.response_started:
            self.transport.close()
        elif getattr(self, "url", b"").startswith(b"/api/"):
            body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
            _answer_and_close(self.transport, status, body, b"application/json")
        else:
            _answer_and_close(self.transport, status, message.encode())

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        answering = self.cycle is not None and self.cycle.scope is self.scope and self.cycle.response_started
        if answering or (self._reading_headers and self._header_bytes == 0):
            self.transport.close()  # nothing was asked, or the app answers already
        else:
            # A half-sent request: 408, as nginx and Apache answer. The app, if it was waiting
            # for the body, sees the client disconnect.
            _answer_and_close(self.transport, 408, b"Request timeout: the request was not sent in time.")


class Worker(UvicornWorker):
    """gunicorn's worker class for this service (``--worker-class portfolio_project.server.Worker``)."""

    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": HttpProtocol,
        # The streams (Django Channels consumers) are served on the same port.
        "ws": "websockets-sansio",
        # Off unless asked for (docs/DESIGN.md, "Streams"): each client's zlib stream costs
        # memory, and compressing every message once per client costs CPU.
        "ws_per_message_deflate": STREAM_COMPRESSION,
        "lifespan": "on",  # the streams' hub stops at shutdown (portfolio_project/asgi.py)
        "proxy_headers": False,
        "server_header": False,
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # In-flight requests get gunicorn's graceful timeout at shutdown, less a second, so that
        # uvicorn ends them before gunicorn kills the worker.
        self.config.timeout_graceful_shutdown = max(1, int(self.cfg.graceful_timeout) - 1)

    def init_process(self) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        super().init_process()
