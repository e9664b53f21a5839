"""A local CoinGecko for tests: a real HTTP server, not a mock of ``requests``.

Register with ``pytest_plugins = ["tests.support.price_server"]``. The ``coingecko_server`` fixture
points the settings at it (``PRICE_PROVIDER="coingecko"``, short timeouts) and hands back a
``FakeCoinGecko`` to script: prices per coin id, and misbehaviour for the next requests
(an HTTP status, a slow answer, garbage, an answer that never comes, one dripped a byte at
a time). Every request is recorded for assertions.

One server runs for the whole session; each test starts with no prices, no script and no
recorded requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.process_state import reset_breakers

API_PREFIX = "/api/v3"
NOW = object()  # set_price(updated_at=NOW): the server's clock when it answers
# What assets.prices.provider_status() says in a process that has not asked the provider yet.
UNASKED_STATUS = {
    "provider": "coingecko",
    "ok": True,
    "breaker": "closed",
    "consecutive_failures": 0,
    "last_success_at": None,
    "last_failure_at": None,
    "last_error": None,
}


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names


@dataclass
class Scripted:
    """How to answer one upcoming request instead of the normal way."""

    status: int = 200
    body: bytes | None = None  # None: the normal price answer
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    hang: bool = False  # read the request, answer nothing until the test ends
    drip_seconds: float = 0.0  # send the answer one byte at a time, this long apart
    drip_headers: bool = False  # drip the status line and headers too, not only the body


class FakeCoinGecko:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # coin id -> raw JSON text of its entry, or its (name, JSON literal) parts
        self._entries: dict[str, str | list[tuple[str, str]]] = {}
        self._script: deque[Scripted] = deque()
        self._wake = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-coingecko", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"

    # --- scripting ---------------------------------------------------------------------

    def set_price(
        self,
        coin_id: str,
        price: str | int,
        *,
        updated_at: int | object | None = NOW,
        volume_24h: str | int | None = "31235654587.08",
    ) -> None:
        """``price`` goes into the JSON verbatim as a number literal ("67187.3358", "NaN", "-1").

        ``updated_at``: unix seconds, ``NOW`` (default) for the answer time, None to omit it.
        ``volume_24h``: ``usd_24h_vol``, USD traded in the last day, verbatim, answered (in
        CoinGecko's order: after the price) only to a request with ``include_24hr_vol=true``,
        as CoinGecko does; None to omit it.
        """
        parts = [("usd", str(price))]
        if volume_24h is not None:
            parts.append(("usd_24h_vol", str(volume_24h)))
        if updated_at is NOW:
            parts.append(("usd_last_updated_at", "{now}"))
        elif updated_at is not None:
            parts.append(("usd_last_updated_at", str(int(updated_at))))
        with self._lock:
            self._entries[coin_id] = parts

    def set_entry(self, coin_id: str, raw_json: str) -> None:
        """The entry of ``coin_id`` as raw JSON text, for shapes set_price cannot make."""
        with self._lock:
            self._entries[coin_id] = raw_json

    def fail_next(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"status": {"error_code": status, "error_message": "scripted failure"}}).encode()
        self._push(times, Scripted(status=status, body=body, headers=headers or {}))

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """Answer normally, but only after ``seconds``."""
        self._push(times, Scripted(delay_seconds=seconds))

    def garbage_next(
        self, body: bytes, *, times: int = 1, status: int = 200, content_type: str = "application/json"
    ) -> None:
        self._push(times, Scripted(status=status, body=body, headers={"Content-Type": content_type}))

    def hang_next(self, *, times: int = 1) -> None:
        """Accept the connection, read the request, and never answer (until the test ends)."""
        self._push(times, Scripted(hang=True))

    def drip_next(self, seconds: float, *, times: int = 1, headers_too: bool = False) -> None:
        """Answer normally, one byte every ``seconds``: each wait is far shorter than any read
        timeout, the whole answer far longer than any request may take."""
        self._push(times, Scripted(drip_seconds=seconds, drip_headers=headers_too))

    def reset(self) -> None:
        self._wake.set()  # cut short handlers still sleeping for the previous test
        with self._lock:
            self._entries.clear()
            self._script.clear()
            self.requests.clear()
            self._wake = threading.Event()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._wake.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # --- serving -----------------------------------------------------------------------

    def _push(self, times: int, scripted: Scripted) -> None:
        with self._lock:
            self._script.extend([scripted] * times)

    def _answer(self, request: RecordedRequest) -> tuple[Scripted, threading.Event]:
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else Scripted()
            wake = self._wake
            if scripted.body is None and scripted.status == 200:
                scripted = replace(scripted, body=self._price_body(request))
        return scripted, wake

    def _price_body(self, request: RecordedRequest) -> bytes:
        if request.path != f"{API_PREFIX}/simple/price":
            return b'{"error": "Not Found"}'
        ids = [coin for value in request.query.get("ids", []) for coin in value.split(",") if coin]
        now = str(int(time.time()))
        with_volume = request.query.get("include_24hr_vol") == ["true"]
        entries = [
            f"{json.dumps(c)}: {_answered(self._entries[c], now, with_volume)}" for c in ids if c in self._entries
        ]
        return ("{" + ", ".join(entries) + "}").encode()


def _handler_for(server: FakeCoinGecko) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            recorded = RecordedRequest(
                path=parts.path,
                query=parse_qs(parts.query),
                headers={name.lower(): value for name, value in self.headers.items()},
            )
            scripted, wake = server._answer(recorded)
            if scripted.hang:
                wake.wait()
                return
            if scripted.delay_seconds:
                wake.wait(scripted.delay_seconds)
            status = scripted.status
            if status == 200 and recorded.path != f"{API_PREFIX}/simple/price":
                status = 404
            body = scripted.body or b""
            headers = {"Content-Type": "application/json; charset=utf-8", **scripted.headers}
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if scripted.drip_seconds:
                    self._drip(body, scripted, wake)
                    return
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test); nothing to tell it

        def _drip(self, body: bytes, scripted: Scripted, wake: threading.Event) -> None:
            head = b"".join(self._headers_buffer) + b"\r\n"
            self._headers_buffer = []
            if not scripted.drip_headers:
                self.wfile.write(head)
                head = b""
            for byte in head + body:
                if wake.wait(scripted.drip_seconds):
                    return  # the test is over
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture(scope="session")
def coingecko_http_server():
    server = FakeCoinGecko()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def coingecko_server(coingecko_http_server: FakeCoinGecko, settings) -> FakeCoinGecko:
    """The local CoinGecko, emptied, with the settings pointing at it, and no memory of
    earlier failures (the circuit breaker starts closed)."""
    coingecko_http_server.reset()
    reset_breakers()
    settings.PRICE_PROVIDER = "coingecko"
    settings.COINGECKO_API_URL = coingecko_http_server.url
    settings.COINGECKO_API_KEY = ""
    settings.COINGECKO_TIMEOUT_SECONDS = 0.5
    settings.COINGECKO_RETRIES = 2
    yield coingecko_http_server
    coingecko_http_server.reset()
    reset_breakers()


def _answered(entry: str | list[tuple[str, str]], now: str, with_volume: bool) -> str:
    """An entry as CoinGecko answers it now: ``usd_24h_vol`` only when it was asked for."""
    if isinstance(entry, str):
        return entry.replace("{now}", now)
    parts = [f'"{name}": {value}' for name, value in entry if with_volume or name != "usd_24h_vol"]
    return ("{" + ", ".join(parts) + "}").replace("{now}", now)
