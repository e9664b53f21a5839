"""Changing a password ends the user's tokens and, unless the user keeps them explicitly, the
API keys too, whatever changes it: auth/password/, the admin's password form, ``manage.py
changepassword``, ``set_password()`` + ``save()``, a raw UPDATE. Kept keys keep working; a
hash upgrade on login is no change (docs/DESIGN.md, "Permissions")."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey
from accounts.services import MAX_ACTIVE_KEYS, change_password, create_api_key
from tests.support.api import error_code
from tests.support.threads import run_concurrently

User = get_user_model()

API = "/api/v1"
BALANCE = f"{API}/balance/"
PASSWORD_URL = f"{API}/auth/password/"
PASSWORD = "correct-horse-battery"  # the make_user fixture's
NEW_PASSWORD = "another-long-passphrase-43"
KEY_ENDED = "This API key ended when the password was changed; create a new one at api-keys/ with your token."
TOKEN_ENDED = "This token ended when the password was changed; get a new one from auth/token/."


def with_key(new_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_APCA_API_KEY_ID=new_key.api_key.key_id, HTTP_APCA_API_SECRET_KEY=new_key.secret_key)
    return client


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_key_ended(new_key) -> None:
    response = with_key(new_key).get(BALANCE)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response.json()["error"]["message"] == KEY_ENDED


def assert_token_ended(token: str) -> None:
    response = with_token(token).get(BALANCE)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == TOKEN_ENDED


def assert_token_replaced(token: str) -> None:
    """auth/password/ answers the user's new token: the old one is gone, not just ended."""
    response = with_token(token).get(BALANCE)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid token."
    assert not Token.objects.filter(key=token).exists()


@pytest.fixture
def bot_key(user):
    return create_api_key(user=user, name="grid bot")


@pytest.fixture
def token(auth_client, user) -> str:
    return Token.objects.get(user=user).key


def change_through_the_api(token: str, keep_api_keys: bool | None):
    body = {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    if keep_api_keys is not None:
        body["keep_api_keys"] = keep_api_keys
    return with_token(token).post(PASSWORD_URL, body, format="json")


def change_in_the_admin(user, make_user, keep_api_keys: bool):
    make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.login(username="root", password=PASSWORD)
    form = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    if keep_api_keys:
        form["keep_api_keys"] = "on"
    return admin.post(f"/admin/auth/user/{user.pk}/password/", form)


# --- auth/password/ -------------------------------------------------------------------------


@pytest.mark.parametrize("keep_api_keys", [None, False])
def test_the_password_endpoint_ends_the_token_and_the_keys_by_default(user, bot_key, token, keep_api_keys):
    # when
    response = change_through_the_api(token, keep_api_keys)

    # then
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"username", "token", "api_keys_kept"}
    assert (body["username"], body["api_keys_kept"]) == ("alice", 0)
    assert body["token"] != token
    assert with_token(body["token"]).get(BALANCE).status_code == 200
    assert_token_replaced(token)
    assert_key_ended(bot_key)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert with_token(token).get(f"{API}/api-keys/").status_code == 401
    assert with_token(body["token"]).get(f"{API}/api-keys/").json() == []


def test_the_password_endpoint_keeps_the_keys_when_asked_and_they_still_trade(user, bot_key, token, btc_at_50k):
    # given a key revoked before, which keeping must not bring back
    revoked = create_api_key(user=user, name="old bot")
    with_token(token).delete(f"{API}/api-keys/{revoked.api_key.key_id}/")

    # when
    response = change_through_the_api(token, keep_api_keys=True)

    # then
    assert response.json()["api_keys_kept"] == 1
    assert_token_replaced(token)
    order = with_key(bot_key).post(
        f"{API}/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}, format="json"
    )
    assert order.status_code == 201
    assert with_key(revoked).get(BALANCE).status_code == 401
    keys = with_token(response.json()["token"]).get(f"{API}/api-keys/").json()
    assert [key["key_id"] for key in keys] == [bot_key.api_key.key_id]


def test_keeping_keys_does_not_bring_back_keys_ended_by_an_earlier_change(user, bot_key, token):
    # given the key ended by a password change in a shell
    user.set_password("an-intermediate-passphrase-1")
    user.save()
    fresh_token = APIClient().post(
        f"{API}/auth/token/", {"username": "alice", "password": "an-intermediate-passphrase-1"}, format="json"
    )
    body = {"old_password": "an-intermediate-passphrase-1", "new_password": NEW_PASSWORD, "keep_api_keys": True}

    # when the user changes it again, keeping the keys
    response = with_token(fresh_token.json()["token"]).post(PASSWORD_URL, body, format="json")

    # then the key ended earlier stays ended
    assert (response.status_code, response.json()["api_keys_kept"]) == (200, 0)
    assert_key_ended(bot_key)


def test_a_wrong_old_password_is_400_and_changes_nothing(user, bot_key, token):
    # given
    stored = User.objects.get(pk=user.pk).password

    # when
    response = with_token(token).post(
        PASSWORD_URL, {"old_password": "not-it", "new_password": NEW_PASSWORD}, format="json"
    )

    # then
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert response.json()["error"]["details"] == {"old_password": ["This is not your current password."]}
    assert User.objects.get(pk=user.pk).password == stored
    assert with_token(token).get(BALANCE).status_code == 200
    assert with_key(bot_key).get(BALANCE).status_code == 200


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"old_password": PASSWORD, "new_password": "short"}, "validation_error", "new_password"),
        ({"old_password": PASSWORD, "new_password": "password123"}, "validation_error", "new_password"),
        ({"old_password": PASSWORD}, "validation_error", "new_password"),
        ({"new_password": NEW_PASSWORD}, "validation_error", "old_password"),
        ({"old_password": PASSWORD, "new_password": NEW_PASSWORD, "keep_api_keys": "maybe"}, "validation_error", None),
        ({"old_password": PASSWORD, "new_password": NEW_PASSWORD, "keep_keys": True}, "unknown_field", "keep_keys"),
    ],
    ids=["too-short", "too-common", "no-new", "no-old", "keep-not-a-boolean", "unknown-field"],
)
def test_a_bad_password_request_is_400_and_changes_nothing(user, bot_key, token, body, code, field):
    # given
    stored = User.objects.get(pk=user.pk).password

    # when
    response = with_token(token).post(PASSWORD_URL, body, format="json")

    # then
    assert response.status_code == 400
    assert error_code(response) == code
    assert field is None or field in response.json()["error"]["details"]
    assert User.objects.get(pk=user.pk).password == stored
    assert with_token(token).get(BALANCE).status_code == 200
    assert with_key(bot_key).get(BALANCE).status_code == 200


def test_the_password_endpoint_needs_a_logged_in_user(db):
    response = APIClient().post(PASSWORD_URL, {"old_password": "x", "new_password": NEW_PASSWORD}, format="json")
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_password_attempts_are_throttled_like_logins(user, token, monkeypatch, throttle_clock_frozen):
    # given one login attempt a minute per username, spent by a login
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "login_username": "1/min"}
    )
    APIClient().post(f"{API}/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    stored = User.objects.get(pk=user.pk).password

    # when
    response = change_through_the_api(token, keep_api_keys=False)

    # then
    assert response.status_code == 429
    assert error_code(response) == "throttled"
    assert response["Retry-After"] == "30"
    assert User.objects.get(pk=user.pk).password == stored


def test_a_session_stays_logged_in_after_changing_its_password_and_gets_a_token(user, bot_key):
    # given the browsable API's session
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(user)

    # when
    response = client.post(
        PASSWORD_URL, {"old_password": PASSWORD, "new_password": NEW_PASSWORD, "keep_api_keys": True}, format="json"
    )

    # then
    assert response.status_code == 200
    assert client.get(BALANCE).status_code == 200
    assert with_token(response.json()["token"]).get(BALANCE).status_code == 200
    assert with_key(bot_key).get(BALANCE).status_code == 200


# --- Every other path ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep_api_keys", [False, True])
def test_the_admin_password_form_ends_the_keys_unless_keep_is_ticked(user, make_user, bot_key, token, keep_api_keys):
    # when
    response = change_in_the_admin(user, make_user, keep_api_keys)

    # then
    assert response.status_code == 302
    assert_token_ended(token)
    if keep_api_keys:
        assert with_key(bot_key).get(BALANCE).status_code == 200
    else:
        assert_key_ended(bot_key)
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)


def test_the_admin_password_page_offers_to_keep_the_keys_unticked(user, make_user):
    # given
    make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.login(username="root", password=PASSWORD)

    # when
    page = admin.get(f"/admin/auth/user/{user.pk}/password/").content.decode()

    # then
    attributes = 'name="keep_api_keys" aria-describedby="id_keep_api_keys_helptext" id="id_keep_api_keys"'
    checkbox = f'<input type="checkbox" {attributes}>'
    label = '<label class="vCheckboxLabel" for="id_keep_api_keys">Keep the user&#x27;s API keys</label>'
    assert f"{checkbox} {label}" in page


def test_disabling_password_logins_in_the_admin_ends_the_keys(user, make_user, bot_key):
    # given
    make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.login(username="root", password=PASSWORD)

    # when
    response = admin.post(f"/admin/auth/user/{user.pk}/password/", {"usable_password": "false", "unset-password": "1"})

    # then
    assert response.status_code == 302
    assert not User.objects.get(pk=user.pk).has_usable_password()
    assert_key_ended(bot_key)


def test_set_password_and_save_ends_the_keys(user, bot_key):
    # when
    user.set_password(NEW_PASSWORD)
    user.save()

    # then
    assert_key_ended(bot_key)


def test_manage_py_changepassword_ends_the_keys(user, bot_key, monkeypatch):
    # given the command's prompt answered
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)

    # when
    call_command("changepassword", "alice")

    # then
    assert_key_ended(bot_key)


def test_a_raw_update_of_the_password_column_ends_the_keys(user, bot_key):
    # when
    User.objects.filter(pk=user.pk).update(password="md5$x$0123")

    # then
    assert_key_ended(bot_key)


def test_keys_ended_by_a_password_change_are_not_listed_and_do_not_count_against_the_cap(user, auth_client):
    # given the cap of keys, all ended by a password change in a shell
    for i in range(MAX_ACTIVE_KEYS):
        create_api_key(user=user, name=f"k{i}")
    user.set_password(NEW_PASSWORD)
    user.save()
    client = with_token(
        APIClient()
        .post(f"{API}/auth/token/", {"username": "alice", "password": NEW_PASSWORD}, format="json")
        .json()["token"]
    )

    # when
    listed = client.get(f"{API}/api-keys/")
    created = client.post(f"{API}/api-keys/", {"name": "after the change"}, format="json")

    # then
    assert listed.json() == []
    assert created.status_code == 201
    assert with_key_pair(created.json()).get(BALANCE).status_code == 200


def with_key_pair(body: dict) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_APCA_API_KEY_ID=body["key_id"], HTTP_APCA_API_SECRET_KEY=body["secret_key"])
    return client


def test_the_admin_says_which_keys_a_password_change_ended(user, make_user, bot_key):
    # given one key ended by a password change and one made after it
    user.set_password(NEW_PASSWORD)
    user.save()
    after = create_api_key(user=user, name="after")
    make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.login(username="root", password=PASSWORD)

    # when
    page = admin.get("/admin/accounts/apikey/").content.decode()

    # then
    assert page.count('<td class="field-state">ended: password changed</td>') == 1
    assert page.count('<td class="field-state">active</td>') == 1
    row = page.split(after.api_key.key_id, 1)[1].split("</tr>", 1)[0]
    assert '<td class="field-state">active</td>' in row


# --- What does not change the password --------------------------------------------------------


class FewIterations(PBKDF2PasswordHasher):
    iterations = 2


class MoreIterations(PBKDF2PasswordHasher):
    iterations = 3


def test_a_login_that_upgrades_the_password_hash_keeps_the_keys(user, settings):
    # given a hash made with fewer iterations than the hasher now wants (a Django upgrade)
    settings.PASSWORD_HASHERS = [f"{__name__}.FewIterations"]
    user.set_password(PASSWORD)
    user.save()
    key = create_api_key(user=user, name="grid bot")
    settings.PASSWORD_HASHERS = [f"{__name__}.MoreIterations"]
    before = User.objects.get(pk=user.pk).password

    # when the user logs in, and Django stores the hash again
    login = APIClient().post(f"{API}/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")

    # then the hash changed, the password did not, and the key still works
    assert login.status_code == 200
    after = User.objects.get(pk=user.pk).password
    assert (before.split("$")[1], after.split("$")[1]) == ("2", "3")
    assert with_key(key).get(BALANCE).status_code == 200


def test_the_migration_binds_existing_keys_to_their_owners_current_password(user, bot_key):
    # given a key as it was before keys were bound (its fingerprint not of this password)
    ApiKey.objects.filter(pk=bot_key.api_key.pk).update(password_fingerprint="0" * 64)
    assert with_key(bot_key).get(BALANCE).status_code == 401

    # when the data migration runs
    migration = import_module("accounts.migrations.0004_api_key_password_fingerprint")
    migration.stamp_existing_keys(django_apps, type("SchemaEditor", (), {"connection": connection})())

    # then the key works as it did
    assert with_key(bot_key).get(BALANCE).status_code == 200


def test_key_authentication_stays_one_query(user, bot_key, django_assert_num_queries):
    # given
    client = with_key(bot_key)
    client.get(BALANCE)

    # then the key with its user (one query, the fingerprint checked without another), the balance
    with django_assert_num_queries(2):
        assert client.get(BALANCE).status_code == 200


def test_a_key_is_bound_to_the_password_stored_when_it_is_made_not_to_a_stale_user(user):
    # given the user as a request loaded it, then the password changed (another request)
    loaded_before = User.objects.get(pk=user.pk)
    user.set_password(NEW_PASSWORD)
    user.save()

    # when the first request makes a key
    key = create_api_key(user=loaded_before, name="made just after")

    # then the key works under the password stored now
    assert with_key(key).get(BALANCE).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_keys_made_while_the_password_changes_with_keep_all_work_afterwards(make_user):
    # given a user loaded by each request before the change, as authentication loads it
    alice = make_user("alice")
    loaded = [User.objects.get(pk=alice.pk) for _ in range(6)]

    # when one request changes the password keeping the keys while the others make keys
    results = run_concurrently(
        lambda: change_password(user=User.objects.get(pk=alice.pk), raw_password=NEW_PASSWORD, keep_api_keys=True),
        *[lambda stale=stale: create_api_key(user=stale, name="racing bot") for stale in loaded],
    )

    # then no key was made under the old password after the new one was stored
    assert not [result for result in results if isinstance(result, Exception)]
    keys = results[1:]
    assert [with_key(key).get(BALANCE).status_code for key in keys] == [200] * 6
    assert ApiKey.objects.filter(user=alice).count() == 6
