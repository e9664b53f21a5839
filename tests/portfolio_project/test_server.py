"""The production server (gunicorn with portfolio_project/server.py's worker class, serving
portfolio_project/asgi.py), as a client meets it: a request whose headers or body do not arrive
in time is answered 408 and closed, oversized headers 431 and bodies 413, Django's sync views keep one
persistent database connection per request thread however many requests wait, a streamed CSV
export arrives whole, a WebSocket to a path no stream serves is refused without an error, and a
stream's messages are compressed only where STREAM_COMPRESSION asks for it."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import threading
from decimal import Decimal

import pytest
import requests
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.services import issue_token
from balances.models import CashTransaction
from balances.services import deposit
from orders.models import Order
from tests.faults.servers import AppServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(request):
    app = AppServer(**getattr(request, "param", {})).start(workers=1)
    yield app
    app.stop()


def connect(app: AppServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", app.port), timeout=10)


def answer(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("server", [{"HTTP_HEADER_TIMEOUT": "1"}], indirect=True)
def test_headers_that_do_not_arrive_in_time_are_answered_408_and_the_connection_closed(server):
    # given: a client that sends half of its headers and then nothing
    with connect(server) as client:
        client.sendall(b"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        # when
        received = answer(client)

    # then
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert received.endswith(b"\r\n\r\nRequest timeout: the request was not sent in time.")


@pytest.mark.parametrize("server", [{"HTTP_HEADER_TIMEOUT": "1"}], indirect=True)
def test_a_connection_that_never_sends_a_byte_is_closed_without_an_answer(server):
    # given / when: a connection left idle
    with connect(server) as client:
        received = answer(client)

    # then
    assert received == b""


@pytest.mark.parametrize("server", [{"HTTP_BODY_TIMEOUT": "1"}], indirect=True)
def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_nothing_is_placed(server, user):
    # given: a whole request head announcing 100 bytes of an order, and 10 of them
    token = issue_token(user=user).key
    with connect(server) as client:
        client.sendall(
            b"POST /api/v1/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Token " + token.encode() + b"\r\nContent-Length: 100\r\n\r\n" + b'{"asset_i'
        )

        # when
        received = answer(client)

    # then
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert requests.get(f"{server.url}/api/v1/health/", timeout=10).status_code == 200
    assert not Order.objects.filter(user=user).exists()


def test_headers_larger_than_the_server_accepts_are_answered_431(server):
    # given: 100 headers of 1 KB (64 KB is the most a request's headers may be)
    headers = b"".join(b"X-Padding-%d: %s\r\n" % (n, b"a" * 1000) for n in range(100))
    with connect(server) as client:
        client.sendall(b"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")

        # when
        received = answer(client)

    # then
    assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_a_body_announced_larger_than_the_server_accepts_is_answered_413_before_it_is_sent(server):
    # given: an order announcing 11 MB (10 MB is the most; Django answers bodies over 2.5 MB itself)
    with connect(server) as client:
        client.sendall(
            b"POST /api/v1/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 11534336\r\n\r\n"
        )

        # when: nothing of the body is sent
        received = answer(client)

    # then: the API's error shape, and the connection closed
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"content-type: application/json; charset=utf-8" in head
    assert json.loads(body) == {
        "error": {
            "code": "request_too_large",
            "message": "The request body is larger than this API accepts.",
            "details": {},
        }
    }


def server_backends(server: AppServer) -> set[int]:
    """The PostgreSQL backends the server holds on the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [server.application_name],
        )
        return {pid for (pid,) in cursor.fetchall()}


@pytest.mark.parametrize("server", [{"WEB_THREADS": "2"}], indirect=True)
def test_many_requests_at_once_share_one_persistent_connection_per_request_thread(server, user):
    # given: one worker with two request threads, and eight clients reading a balance (a token
    # lookup and a balance read each) twenty times
    token = issue_token(user=user).key

    def client() -> list[int]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Token {token}"
            return [session.get(f"{server.url}/api/v1/balance/", timeout=30).status_code for _ in range(20)]

    def burst() -> list[int]:
        results: list[list[int]] = []
        threads = [threading.Thread(target=lambda: results.append(client())) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [status for statuses in results for status in statuses]

    # when: two bursts
    first = burst()
    after_first = server_backends(server)
    second = burst()

    # then: every request answered, on at most two connections, kept from one burst to the next
    # (Django's own ASGI handler opens one per request, on a thread of its own)
    assert first + second == [200] * 320
    assert 1 <= len(after_first) <= 2
    assert server_backends(server) == after_first


def test_a_ledger_exported_as_csv_streams_whole_through_the_server(server, support_staff, make_user):
    # given: a customer with 901 cash rows (two batches of the stream; a POST may carry 1,000 fields)
    # and Support logged in
    customer = make_user("carol")
    for n in range(900):
        deposit(user=customer, amount=Decimal("1.00"), client_reference=f"row-{n}")
    rows = list(CashTransaction.objects.filter(user=customer).order_by("created_at", "id").values_list("pk", flat=True))
    admin = Client()
    admin.force_login(support_staff)
    csrf = base64.b32encode(os.urandom(20)).decode()  # a CSRF secret, sent as cookie and field alike

    # when
    response = requests.post(
        server.url + reverse("admin:balances_cashtransaction_changelist"),
        data={"action": "export_csv", "_selected_action": rows, "csrfmiddlewaretoken": csrf},
        cookies={"sessionid": admin.cookies["sessionid"].value, "csrftoken": csrf},
        timeout=60,
    )

    # then
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    header, *lines = csv.reader(io.StringIO(response.text))
    assert header[:5] == ["id", "created_at", "username", "transaction_type", "amount"]
    assert [int(line[0]) for line in lines] == rows
    assert [line[4] for line in lines] == ["10000.00"] + ["1.00"] * 900


def websocket_handshake(app: AppServer, path: str, *headers: bytes) -> bytes:
    """The server's answer to a WebSocket handshake on ``path``."""
    key = base64.b64encode(os.urandom(16))
    with connect(app) as client:
        client.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n"
            + b"".join(header + b"\r\n" for header in headers)
            + b"\r\n"
        )
        return client.recv(65536)


def test_a_websocket_to_a_path_no_stream_serves_is_refused_without_an_error(server):
    # when: a WebSocket handshake
    received = websocket_handshake(server, "/no-such-stream")

    # then: refused, the server still serves, and its log shows no error
    assert received.startswith(b"HTTP/1.1 403 ")
    assert requests.get(f"{server.url}/api/v1/health/", timeout=10).status_code == 200
    assert "Traceback" not in server.log_text()
    assert "ERROR" not in server.log_text()


# Compression costs the server memory and CPU for each client (docs/DESIGN.md, "Streams"): off
# unless the deployment asks for it.
@pytest.mark.parametrize(
    ("server", "compressed"),
    [({}, False), ({"STREAM_COMPRESSION": "true"}, True)],
    indirect=["server"],
)
def test_stream_messages_are_compressed_only_when_the_deployment_asks(server, compressed):
    # given: a client that offers permessage-deflate, as alpaca-py's and CCXT's do
    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"

    # when
    received = websocket_handshake(server, "/stream", offer)

    # then: the stream is opened, with compression exactly when asked for
    head = received.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 101 ")
    assert (b"sec-websocket-extensions: permessage-deflate" in head) is compressed
