"""Django's session, user and message middleware run for browsers' requests only: an API
request that brings a token or an API key skips them (core/api/middleware.py), and answers as
before; the browsable API's session login and the admin keep all of it."""

import pytest
from django.test import Client

from accounts.services import create_api_key, issue_token


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_token_request_builds_no_session_user_or_messages(api_client, user):
    # given a token
    key = issue_token(user=user).key
    # when it reads the balance
    response = api_client.get("/api/v1/balance/", HTTP_AUTHORIZATION=f"Token {key}")
    # then it is answered as its user, and nothing of a browser's was made for it
    assert response.status_code == 200
    request = response.wsgi_request
    assert request.user == user  # DRF's authentication set it on the Django request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    assert "Set-Cookie" not in response


def test_an_api_key_request_on_alpacas_paths_skips_them_too(api_client, user):
    key = create_api_key(user=user, name="bot")
    headers = {"HTTP_APCA_API_KEY_ID": key.api_key.key_id, "HTTP_APCA_API_SECRET_KEY": key.secret_key}
    response = api_client.get("/v2/account", **headers)
    assert response.status_code == 200
    assert not hasattr(response.wsgi_request, "session")


def test_a_logged_in_browser_still_has_its_session(browser):
    # when a browser with a session reads the balance, with no Authorization header
    response = browser.get("/api/v1/balance/", HTTP_ACCEPT="application/json")
    # then the session authenticated it
    assert response.status_code == 200
    assert response.wsgi_request.session.session_key


def test_a_bad_token_beside_a_session_is_still_a_401(browser):
    # The token class answers any Authorization header: the session was never the fallback.
    response = browser.get("/api/v1/balance/", HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 401


def test_the_admin_keeps_its_session_whatever_the_headers(make_user):
    # given a superuser logged in to the admin, whose client also sends an Authorization header
    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    # when it opens the admin
    response = client.get("/admin/", HTTP_AUTHORIZATION="Token whatever")
    # then the session, not the header, decides: the index, not the login page
    assert response.status_code == 200
    assert response.wsgi_request.user == admin
