"""Instructions one API request executes in the Django process, counted by valgrind's callgrind:
a figure that a busy machine does not move, where CPU time moves by 10-20% between runs.

    DATABASE_URL=... .venv/bin/python scripts/bench/request_instructions.py [KIND ...] [--requests N]

KIND is ``server:request`` with server ``wsgi`` or ``asgi`` and request ``v1`` (a market BUY on
``/api/v1/orders/``), ``v2`` (the same on Alpaca's ``/v2/orders``) or ``pf``
(``GET /api/v1/portfolio/``); default ``wsgi:v1 wsgi:v2``. For each kind the process runs under
callgrind twice, after the same set-up and 30 warm-up requests: once with no more requests and
once with N more (default 300); the difference over N is the instructions per request. Set-up
as in ``request_cpu.py`` (its settings, its user ``request-cpu-bench``). Needs ``valgrind``;
each kind takes a minute or two.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

# ruff: noqa: S603, S607  (its own fixed commands: valgrind on this script, request_cpu.py)

ROOT = Path(__file__).resolve().parents[2]


def child(kind: str, count: int) -> None:
    """Run inside valgrind: set up, warm up, then ``count`` requests of ``kind``."""
    sys.argv = [sys.argv[0]]
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    import request_cpu  # sets up Django with the bench's settings
    import uvloop
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler

    from accounts.services import create_api_key, issue_token, revoke_api_keys
    from portfolio_project.asgi import application

    user = get_user_model().objects.get(username=request_cpu.BENCH_USER)  # made by request_cpu.py
    revoke_api_keys(key_ids=list(user.api_keys.values_list("key_id", flat=True)), actor=user)
    token = issue_token(user=user).key
    key = create_api_key(user=user, name="instructions")
    key_headers = {"APCA-API-KEY-ID": key.api_key.key_id, "APCA-API-SECRET-KEY": key.secret_key}
    order = json.dumps({"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}).encode()
    alpaca = json.dumps(
        {"symbol": "BTC/USD", "qty": "0.0001", "side": "buy", "type": "market", "time_in_force": "gtc"}
    ).encode()
    requests = {
        "v1": ("POST", "/api/v1/orders/", {"Authorization": f"Token {token}"}, order),
        "v2": ("POST", "/v2/orders", key_headers, alpaca),
        "pf": ("GET", "/api/v1/portfolio/", {"Authorization": f"Token {token}"}, b""),
    }
    server, name = kind.split(":")
    method, path, headers, body = requests[name]
    handler = WSGIHandler()
    loop = uvloop.new_event_loop()

    def one_wsgi() -> None:
        statuses = []
        chunks = handler(request_cpu.environ(method, path, headers, body), lambda s, _h: statuses.append(s))
        b"".join(chunks)
        chunks.close()
        assert statuses[0][:3] in ("200", "201"), statuses

    async def one_asgi() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await application(request_cpu.scope(method, path, headers, body), receive, send)
        assert sent[0]["status"] in (200, 201), sent[0]

    async def many_asgi(n: int) -> None:
        for _ in range(n):
            await one_asgi()

    def run(n: int) -> None:
        if server == "wsgi":
            for _ in range(n):
                one_wsgi()
        else:
            loop.run_until_complete(many_asgi(n))

    run(30)
    run(count)


def instructions(kind: str, count: int) -> int:
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            kind,
            str(count),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--child"]:
        child(args[1], int(args[2]))
        return
    count = 300
    if "--requests" in args:
        at = args.index("--requests")
        count = int(args[at + 1])
        del args[at : at + 2]
    subprocess.run([sys.executable, str(ROOT / "scripts/bench/request_cpu.py"), "100"], check=True, capture_output=True)
    for kind in args or ["wsgi:v1", "wsgi:v2"]:
        per_request = (instructions(kind, count) - instructions(kind, 0)) / count
        print(f"{kind:<10} {per_request / 1e6:.2f} M instructions per request (n={count})", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")
    main()
