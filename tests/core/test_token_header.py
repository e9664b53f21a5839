"""The Authorization header (issue 13): Swagger UI's bearer scheme works, and a 401 says
what is wrong with the header instead of "credentials were not provided"."""

import pytest

from accounts.services import issue_token
from tests.support.api import error_code


@pytest.fixture
def key(user):
    return issue_token(user=user).key


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer", "TOKEN"])
def test_the_key_is_taken_after_token_or_bearer(api_client, key, scheme):
    response = api_client.get("/api/v1/balance/", HTTP_AUTHORIZATION=f"{scheme} {key}")
    assert response.status_code == 200
    assert response.json()["current_balance"] == "10000.00"


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("{key}", "no scheme before the key"),
        ("Basic {key}", "scheme 'Basic' is not accepted"),
        ("Token", "the scheme and one key"),
        ("Token {key} {key}", "the scheme and one key"),
        ("Token nope", "Invalid token"),
    ],
)
def test_a_malformed_header_is_a_401_that_says_what_is_wrong(api_client, key, header, says):
    # when
    response = api_client.get("/api/v1/balance/", HTTP_AUTHORIZATION=header.format(key=key))
    # then
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert says in response.json()["error"]["message"]


def test_no_header_at_all_says_how_to_authenticate(api_client, db):
    response = api_client.get("/api/v1/balance/")
    assert response.status_code == 401
    assert "Authorization: Token <key>" in response.json()["error"]["message"]


def test_the_schema_describes_the_token_as_a_bearer_scheme(api_client, db):
    schemes = api_client.get("/api/v1/schema/?format=json").json()["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["type"] == "http"
    assert schemes["tokenAuth"]["scheme"] == "bearer"


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_schema_gives_real_examples(api_client, db):
    # given
    schema = api_client.get("/api/v1/schema/?format=json").json()
    # then: every decimal has a plain example (Swagger UI made up "-331605500823993")
    decimals = [node for node in _walk(schema) if node.get("format") == "decimal"]
    assert len(decimals) > 20
    assert {node["example"] for node in decimals} == {"250.00", "63389.3", "0.01"}
    # every error answer has an example in the real error shape (health's 503 is its own body)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and response["content"]["application/json"]["schema"]["$ref"].endswith("/Error"):
                    (example,) = response["content"]["application/json"]["examples"].values()
                    assert set(example["value"]["error"]) == {"code", "message", "details"}, (path, method, status)
    # and no request example carries an idempotency key a second Execute would replay
    requests = [
        example["value"]
        for operation in schema["paths"]["/api/v1/orders/"].values()
        for example in operation.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("examples", {})
        .values()
    ]
    assert requests
    assert not any("client_order_id" in value for value in requests)
