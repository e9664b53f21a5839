"""A database that is down or restarting is a 503 ``service_unavailable``, never a 500
(docs/DESIGN.md, "Faults"). The outage is real: the connection is pointed at a local port where
nothing listens, so psycopg fails to connect exactly as it does while PostgreSQL restarts.
(tests/faults/ restarts, kills and freezes a PostgreSQL of its own under load.)"""

from __future__ import annotations

import copy

import pytest
from django.db import connection

from tests.support.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class Outage:
    def __init__(self) -> None:
        self.saved = copy.deepcopy(connection.settings_dict)

    def begin(self) -> None:
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
        connection.settings_dict["OPTIONS"] = {k: v for k, v in self.saved.get("OPTIONS", {}).items() if k != "port"}

    def end(self) -> None:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(copy.deepcopy(self.saved))


@pytest.fixture
def database_down():
    outage = Outage()
    outage.begin()
    yield outage
    outage.end()


def assert_service_unavailable(response):
    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "service_unavailable",
            "message": "The service is unavailable (its database cannot be reached); try again shortly.",
            "details": {},
        }
    }
    assert response["Retry-After"] == "2"


def test_an_api_request_while_the_database_is_down_is_a_503_in_the_error_shape(client, database_down):
    # when
    balance = client.get("/api/v1/balance/", headers={"Authorization": "Token 0123456789abcdef"})
    login = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "pw-pw-pw-pw"}, content_type="application/json"
    )
    order = client.post(
        "/api/v1/orders/",
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"},
        content_type="application/json",
        headers={"Authorization": "Token 0123456789abcdef"},
    )

    # then
    assert_service_unavailable(balance)
    assert_service_unavailable(login)
    assert_service_unavailable(order)


def test_the_admin_while_the_database_is_down_is_a_plain_503_page(client, database_down):
    # given: a session cookie, so the admin must read the session and the user
    client.cookies["sessionid"] = "a" * 32

    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"The service is unavailable (its database cannot be reached); try again shortly."


def test_health_reports_the_database_down_with_a_503(client, database_down):
    # when
    response = client.get("/api/v1/health/")

    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "error: OperationalError"


def test_the_api_answers_again_once_the_database_is_back(client, database_down):
    # given: an answer during the outage, on a connection that failed
    assert client.get("/api/v1/balance/", headers={"Authorization": "Token x"}).status_code == 503

    # when: the database is back
    database_down.end()
    response = client.get("/api/v1/balance/", headers={"Authorization": "Token x"})

    # then: an unknown token is a plain 401 again, with no restart of anything
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
