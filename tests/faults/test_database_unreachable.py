"""A database that never answers a new connection (a host gone from the network, or a
frozen server) is a 503 ``service_unavailable`` after DATABASE_CONNECT_TIMEOUT, in the error
shape: not a request held for psycopg's own 130 s (under gunicorn's sync workers, until the
worker was killed and the client saw the connection drop)."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.faults.servers import AppServer


@pytest.fixture
def silent_database_port():
    """A port that takes TCP connections and never says a word: PostgreSQL's start-up
    message is sent and no answer ever comes, as from a frozen or half-gone server."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield server.getsockname()[1]


def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout(silent_database_port):
    # given: the service pointed at a database that never answers
    app = AppServer(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{silent_database_port}/portfolio",
        DATABASE_CONNECT_TIMEOUT="2",
    ).start(workers=1, health_timeout=10)
    try:
        # when: a request that needs the database (its token is looked up)
        started = time.monotonic()
        response = requests.get(
            f"{app.url}/api/v1/portfolio/", headers={"Authorization": "Token " + "a" * 40}, timeout=20
        )
        took = time.monotonic() - started
    finally:
        app.stop()

    # then
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert 2 <= took < 5
