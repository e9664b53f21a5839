"""Content negotiation remembers its answers per Accept header (core/api/negotiation.py): a
remembered answer is the one DRF gave, per view's renderers, and a refusal is never remembered."""

import pytest

from accounts.services import issue_token
from core.api.negotiation import RememberingNegotiation


@pytest.fixture
def token_header(user):
    return {"HTTP_AUTHORIZATION": f"Token {issue_token(user=user).key}"}


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/html", "text/html; charset=utf-8"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8"),
    ],
)
def test_the_same_header_gets_the_same_answer_each_time(api_client, token_header, accept, content_type):
    # when the same Accept header asks three times
    answers = [api_client.get("/api/v1/balance/", HTTP_ACCEPT=accept, **token_header) for _ in range(3)]
    # then each answer is DRF's choice for it
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert {answer["Content-Type"] for answer in answers} == {content_type}


def test_the_format_parameter_still_overrides_a_remembered_header(api_client, token_header):
    api_client.get("/api/v1/balance/", HTTP_ACCEPT="text/html", **token_header)
    response = api_client.get("/api/v1/balance/?format=json", HTTP_ACCEPT="text/html", **token_header)
    assert response["Content-Type"] == "application/json"


def test_a_refused_header_is_not_remembered(api_client, token_header):
    # given an Accept header no renderer serves
    before = dict(RememberingNegotiation._chosen)
    # when it asks twice
    answers = [api_client.get("/api/v1/balance/", HTTP_ACCEPT="image/png", **token_header) for _ in range(2)]
    # then it is refused both times, and nothing was remembered for it
    assert [answer.status_code for answer in answers] == [406, 406]
    assert {key for key in RememberingNegotiation._chosen if key[2] == "image/png"} <= set(before)


def test_a_long_header_is_negotiated_but_not_remembered(api_client, token_header):
    # given an Accept header longer than a real client sends (DRF reads up to 8 KB of one)
    accept = "*/*, " + ", ".join(f"application/x-junk-{n}" for n in range(40))
    # when
    response = api_client.get("/api/v1/balance/", HTTP_ACCEPT=accept, **token_header)
    # then: answered as DRF answers it, and kept nowhere
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert not [key for key in RememberingNegotiation._chosen if key[2] == accept]


def test_a_client_inventing_headers_cannot_stop_the_cache_from_remembering(api_client, token_header, monkeypatch):
    # given a cache made small, then filled by invented headers
    from core.api import negotiation

    monkeypatch.setattr(negotiation, "_MAX_REMEMBERED", 4)
    monkeypatch.setattr(RememberingNegotiation, "_chosen", {})
    for n in range(10):
        api_client.get("/api/v1/balance/", HTTP_ACCEPT=f"*/*, application/x-{n}", **token_header)

    # when a real client asks
    api_client.get("/api/v1/balance/", HTTP_ACCEPT="application/json", **token_header)

    # then it is remembered, and the cache never held more than its bound
    assert len(RememberingNegotiation._chosen) <= 4
    assert any(key[2] == "application/json" for key in RememberingNegotiation._chosen)
