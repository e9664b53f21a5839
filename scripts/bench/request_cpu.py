"""What one API request costs in the Django process, with no network and no other load in it.

    DATABASE_URL=... .venv/bin/python scripts/bench/request_cpu.py [N] [--profile]

Sends N (default 2000) requests of each kind straight to the application, the way the server's
worker calls it (``portfolio_project.asgi``, on an event loop, the sync code on its request
thread) and, beside it, to Django's WSGI handler the way gunicorn's sync worker called it: a
market BUY on ``/api/v1/orders/`` and on Alpaca's ``/v2/orders``, and ``GET /api/v1/portfolio/``.
Prints, per request, the median wall time and the process CPU time (``time.process_time``: what
the Python process spent, in every thread, which a busy machine moves far less than wall time).
Neither includes reading the request off a socket (uvicorn's httptools, gunicorn's parser).
``--profile`` adds cProfile's top functions of the order request through WSGI, by own time and
by cumulative time (``PROFILE_REQUEST="POST /v2/orders"`` profiles another request,
``PROFILE_LINES`` lists more functions). The settings are the bench's (scripts/bench/run.py): Redis cache, no DEBUG,
throttles raised out of the way. Its user, ``request-cpu-bench``, stays in the database.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/7")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("PRICE_PROVIDER", "simulated")
os.environ.setdefault("CONN_MAX_AGE", "600")
os.environ.setdefault("MAX_DEPOSIT", "100000000.00")
os.environ.setdefault("LOG_LEVEL", "WARNING")
for _rate in ("THROTTLE_USER_RATE", "THROTTLE_ORDER_RATE", "THROTTLE_AUTH_RATE"):
    os.environ.setdefault(_rate, "10000000/min")

import django  # noqa: E402

django.setup()

from decimal import Decimal  # noqa: E402

import uvloop  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

from accounts.services import create_api_key, issue_token, revoke_api_keys  # noqa: E402
from balances.services import deposit  # noqa: E402
from portfolio_project.asgi import application  # noqa: E402

BENCH_USER = "request-cpu-bench"


def environ(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_ACCEPT": "application/json",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
    }
    env.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return env


def scope(method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
    """What uvicorn hands the application for the same request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"accept", b"application/json"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
    }


def main(n: int, profile: bool) -> None:
    User = get_user_model()
    user = User.objects.filter(username=BENCH_USER).first() or User.objects.create_user(BENCH_USER, password=None)
    revoke_api_keys(key_ids=list(user.api_keys.values_list("key_id", flat=True)), actor=user)  # earlier runs'
    deposit(user=user, amount=Decimal("10000000.00"))
    token = issue_token(user=user).key
    key = create_api_key(user=user, name="bench")
    handler = WSGIHandler()
    loop = uvloop.new_event_loop()

    def call_wsgi(method, path, headers, body=b""):
        statuses = []
        chunks = handler(environ(method, path, headers, body), lambda status, _headers: statuses.append(status))
        b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        return statuses[0]

    async def call_asgi(method, path, headers, body=b""):
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await application(scope(method, path, headers, body), receive, send)
        return str(sent[0]["status"])

    def timed_wsgi(request) -> tuple[float, float, str]:
        wall, cpu = time.perf_counter(), time.process_time()
        status = call_wsgi(*request)
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, status

    async def timed_asgi(request) -> tuple[float, float, str]:
        wall, cpu = time.perf_counter(), time.process_time()
        status = await call_asgi(*request)
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, status

    def batch(server: str, request, count: int) -> list[tuple[float, float, str]]:
        """``count`` requests one after the other; through ASGI on one running event loop, as
        the server's worker has one (starting a loop costs more than a request's hop)."""
        if server == "wsgi":
            return [timed_wsgi(request) for _ in range(count)]

        async def run():
            return [await timed_asgi(request) for _ in range(count)]

        return loop.run_until_complete(run())

    order = json.dumps({"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}).encode()
    alpaca = json.dumps(
        {"symbol": "BTC/USD", "qty": "0.0001", "side": "buy", "type": "market", "time_in_force": "gtc"}
    ).encode()
    token_header = {"Authorization": f"Token {token}"}
    key_headers = {"APCA-API-KEY-ID": key.api_key.key_id, "APCA-API-SECRET-KEY": key.secret_key}
    requests = {
        "POST /api/v1/orders/": ("POST", "/api/v1/orders/", token_header, order),
        "POST /v2/orders": ("POST", "/v2/orders", key_headers, alpaca),
        "GET /api/v1/portfolio/": ("GET", "/api/v1/portfolio/", token_header, b""),
    }
    kinds = {(name, server): request for server in ("asgi", "wsgi") for name, request in requests.items()}
    for (name, server), request in kinds.items():  # warm up, and fail loudly on a wrong request
        statuses = {status for _, _, status in batch(server, request, 100)}
        assert statuses <= {"200", "201", "200 OK", "201 Created"}, (name, server, statuses)

    results: dict[tuple[str, str], tuple[list[float], list[float]]] = {kind: ([], []) for kind in kinds}
    for _round in range(max(1, n // 100)):  # interleaved, so drift falls on every kind alike
        for (name, server), request in kinds.items():
            walls, cpus = results[(name, server)]
            for wall, cpu, _status in batch(server, request, 100):
                walls.append(wall)
                cpus.append(cpu)
    print(f"{'request':<36} {'wall ms p50':>12} {'cpu ms mean':>12}   (n={n} each)")
    for (name, server), (walls, cpus) in results.items():
        print(f"{name + f' ({server})':<36} {statistics.median(walls):>12.3f} {statistics.fmean(cpus):>12.3f}")

    if profile:
        profiler = cProfile.Profile(time.process_time)  # CPU time: waiting on a socket costs nothing here
        request = requests[os.environ.get("PROFILE_REQUEST", "POST /api/v1/orders/")]
        profiler.enable()
        for _ in range(n):
            call_wsgi(*request)
        profiler.disable()
        for order_by in ("tottime", "cumulative"):
            out = io.StringIO()
            lines = int(os.environ.get("PROFILE_LINES", "35"))
            pstats.Stats(profiler, stream=out).sort_stats(order_by).print_stats(lines)
            print(out.getvalue())


if __name__ == "__main__":
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    main(int(args[0]) if args else 2000, "--profile" in sys.argv)
