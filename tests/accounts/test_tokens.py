"""API tokens end when the password changes, whatever changes it, and auth/logout/ revokes
them (docs/DESIGN.md, "Permissions"). Through HTTP, as a client meets them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.support.api import error_code

User = get_user_model()

BALANCE = "/api/v1/balance/"
PASSWORD = "a-long-passphrase-42"
NEW_PASSWORD = "another-long-passphrase-43"


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def login(username="carol", password=PASSWORD):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


@pytest.fixture
def carol_token(db) -> str:
    response = APIClient().post("/api/v1/auth/register/", {"username": "carol", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    return response.json()["token"]


def assert_token_ended(token: str) -> None:
    response = client_with(token).get(BALANCE)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response.json()["error"]["message"] == (
        "This token ended when the password was changed; get a new one from auth/token/."
    )


def test_a_login_returns_the_same_token_while_the_password_stands(carol_token):
    assert login().json()["token"] == carol_token
    assert client_with(carol_token).get(BALANCE).status_code == 200


def test_set_password_and_save_ends_the_token_and_a_new_login_gets_a_new_one(carol_token):
    # given
    carol = User.objects.get(username="carol")

    # when the password is changed in code (a shell, a script)
    carol.set_password(NEW_PASSWORD)
    carol.save()

    # then the old token is refused, the old password too, and the new one gets a working token
    assert_token_ended(carol_token)
    assert login().status_code == 401
    fresh = login(password=NEW_PASSWORD).json()["token"]
    assert fresh != carol_token
    assert client_with(fresh).get(BALANCE).status_code == 200
    assert Token.objects.filter(user=carol).count() == 1


def test_the_admin_password_form_ends_the_token(carol_token, make_user):
    # given a superuser in the admin
    make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.login(username="root", password="correct-horse-battery")
    carol = User.objects.get(username="carol")

    # when they set carol's password through the admin's form
    response = admin.post(
        f"/admin/auth/user/{carol.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    # then
    assert response.status_code == 302
    assert_token_ended(carol_token)


def test_manage_py_changepassword_ends_the_token(carol_token, monkeypatch):
    # given the command's prompt answered (it reads the password from the terminal)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)

    # when
    call_command("changepassword", "carol")

    # then
    assert_token_ended(carol_token)
    assert client_with(login(password=NEW_PASSWORD).json()["token"]).get(BALANCE).status_code == 200


def test_a_raw_update_of_the_password_column_ends_the_token(carol_token):
    # given a password changed with no save() at all (a data migration, an UPDATE in psql)
    User.objects.filter(username="carol").update(password="md5$x$0123")

    # then
    assert_token_ended(carol_token)


def test_logout_revokes_the_callers_token(carol_token):
    # when
    response = client_with(carol_token).post("/api/v1/auth/logout/")

    # then
    assert response.status_code == 204
    assert response.content == b""
    refused = client_with(carol_token).get(BALANCE)
    assert refused.status_code == 401
    assert error_code(refused) == "not_authenticated"
    assert Token.objects.filter(user__username="carol").count() == 0
    fresh = login().json()["token"]
    assert fresh != carol_token
    assert client_with(fresh).get(BALANCE).status_code == 200


def test_logout_without_credentials_is_401_and_revokes_nothing(carol_token):
    response = APIClient().post("/api/v1/auth/logout/")
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert client_with(carol_token).get(BALANCE).status_code == 200


def test_logout_of_one_user_leaves_another_users_token(carol_token, make_user):
    # given
    make_user("dave", password=PASSWORD)
    dave_token = login("dave").json()["token"]

    # when
    client_with(dave_token).post("/api/v1/auth/logout/")

    # then
    assert client_with(carol_token).get(BALANCE).status_code == 200


def test_a_token_made_around_the_service_does_not_authenticate(user):
    # given a key DRF's model draws itself, not bound to the password
    token = Token.objects.create(user=user)

    # then it is refused; tokens come from accounts.services.issue_token
    assert client_with(token.key).get(BALANCE).status_code == 401


def test_a_token_checks_in_the_same_single_query_as_before(carol_token, django_assert_num_queries):
    # given
    client = client_with(carol_token)
    client.get(BALANCE)

    # then token + user (one query) and the balance (one query)
    with django_assert_num_queries(2):
        assert client.get(BALANCE).status_code == 200
