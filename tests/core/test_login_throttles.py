"""Logins are throttled per client address and per username on every login path, and the
client address is the socket's unless TRUSTED_PROXY_COUNT says proxies may be believed
(docs/DESIGN.md, "Faults"). Registrations are throttled per address."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from balances.models import CashTransaction, UsdBalance
from tests.support.api import error_code

User = get_user_model()

TOKEN = "/api/v1/auth/token/"
REGISTER = "/api/v1/auth/register/"
SESSION_LOGIN = "/api-auth/login/"
ADMIN_LOGIN = "/admin/login/"

pytestmark = pytest.mark.usefixtures("throttle_clock_frozen")


def token_login(client, username="alice", password="wrong", **extra):
    return client.post(TOKEN, {"username": username, "password": password}, format="json", **extra)


def form_login(path, username="alice", password="wrong", remote_addr="198.51.100.1", **extra):
    return Client(REMOTE_ADDR=remote_addr).post(path, {"username": username, "password": password}, **extra)


# --- The API's token login ----------------------------------------------------------------


def test_a_forged_x_forwarded_for_does_not_reset_the_address_throttle(user, throttle_rates):
    # given 5 attempts a minute per address, and no proxy to believe (the default)
    throttle_rates(auth="5/min", login_username="1000/min")
    client = APIClient(REMOTE_ADDR="198.51.100.1")

    # when 40 wrong passwords come from one socket, each claiming another address
    codes = [
        token_login(client, username=f"user{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(40)
    ]

    # then the socket's address is throttled after 5
    assert codes == [401] * 5 + [429] * 35


def test_a_429_login_is_in_the_error_shape_with_retry_after(user, throttle_rates):
    # given an allowance of one attempt, spent
    throttle_rates(auth="1/min")
    client = APIClient()
    token_login(client)

    # when even the right password comes
    response = token_login(client, password="correct-horse-battery")

    # then it is refused before it is checked (half a minute left of the frozen window)
    assert response.status_code == 429
    assert error_code(response) == "throttled"
    assert response["Retry-After"] == "30"
    assert "token" not in response.json()


def test_one_username_is_throttled_whatever_the_addresses(make_user, throttle_rates):
    # given 3 attempts a minute per username, many per address
    make_user("alice")
    make_user("bob")
    throttle_rates(auth="1000/min", login_username="3/min")

    # when a guesser tries alice from 10 addresses, then alice and bob log in rightly
    guesses = [token_login(APIClient(REMOTE_ADDR=f"203.0.113.{i}")).status_code for i in range(10)]
    alice = token_login(APIClient(REMOTE_ADDR="198.51.100.9"), password="correct-horse-battery")
    bob = token_login(APIClient(REMOTE_ADDR="203.0.113.1"), username="bob", password="correct-horse-battery")

    # then alice's allowance is spent, in any case of her name; bob's is his own
    assert guesses == [401] * 3 + [429] * 7
    assert alice.status_code == 429
    assert token_login(APIClient(), username="ALICE").status_code == 429
    assert bob.status_code == 200


def test_trusted_proxy_count_believes_the_address_the_proxy_saw(user, settings, throttle_rates):
    # given one proxy in front (it appends the address it was connected from)
    settings.TRUSTED_PROXY_COUNT = 1
    throttle_rates(auth="2/min", login_username="1000/min")
    proxy = APIClient(REMOTE_ADDR="10.0.0.2")

    # when a client behind it forges the left of the header, and another client comes
    forged = [token_login(proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.7").status_code for i in range(4)]
    other = token_login(proxy, HTTP_X_FORWARDED_FOR="203.0.113.8")

    # then the forger is counted by the address the proxy saw, and the other has its own allowance
    assert forged == [401, 401, 429, 429]
    assert other.status_code == 401


def test_ipv6_clients_are_counted_by_their_64_block(user, throttle_rates):
    # given 2 attempts a minute per address
    throttle_rates(auth="2/min", login_username="1000/min")

    # when one line's /64 sends from three of its addresses, and another /64 once
    codes = [token_login(APIClient(REMOTE_ADDR=f"2001:db8:1:2::{i}")).status_code for i in range(1, 4)]
    other = token_login(APIClient(REMOTE_ADDR="2001:db8:1:3::1"))

    # then
    assert codes == [401, 401, 429]
    assert other.status_code == 401


# --- The HTML login forms -------------------------------------------------------------------


@pytest.mark.parametrize("path", [SESSION_LOGIN, ADMIN_LOGIN])
def test_a_login_form_is_throttled_per_address_with_a_429_page(user, throttle_rates, path):
    # given 3 attempts a minute per address
    throttle_rates(auth="3/min", login_username="1000/min")

    # when 150 wrong passwords come from one address, with forged headers and other names
    responses = [form_login(path, username=f"user{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i % 250}") for i in range(150)]

    # then after 3 the form comes back as a page saying why, with a 429 and Retry-After
    assert [r.status_code for r in responses[:3]] == [200] * 3  # Django shows the form again
    assert {r.status_code for r in responses[3:]} == {429}
    refused = responses[-1]
    assert refused["Content-Type"].startswith("text/html")
    assert refused["Retry-After"] == "30"
    assert "Too many login attempts. Try again in 30 seconds." in refused.content.decode()


@pytest.mark.parametrize("path", [SESSION_LOGIN, ADMIN_LOGIN])
def test_a_login_form_is_throttled_per_username(make_user, throttle_rates, path):
    # given 2 attempts a minute per username
    make_user("alice", is_staff=True)
    throttle_rates(auth="1000/min", login_username="2/min")

    # when alice's password is guessed from many addresses, then she comes with the right one
    codes = [form_login(path, remote_addr=f"203.0.113.{i}").status_code for i in range(5)]
    right = form_login(path, password="correct-horse-battery", remote_addr="198.51.100.2")

    # then the right password is refused too while the window lasts: no session was opened
    assert codes == [200, 200, 429, 429, 429]
    assert right.status_code == 429
    assert "sessionid" not in right.cookies


@pytest.mark.parametrize("path", [SESSION_LOGIN, ADMIN_LOGIN])
def test_a_login_form_within_the_allowance_logs_in(make_user, throttle_rates, path):
    # given
    make_user("alice", is_staff=True)
    throttle_rates(auth="3/min", login_username="3/min")

    # when
    response = form_login(path, password="correct-horse-battery")

    # then Django's redirect after a login
    assert response.status_code == 302
    assert "sessionid" in response.cookies


def test_the_three_login_paths_share_one_allowance(user, throttle_rates):
    # given 3 attempts a minute per username
    throttle_rates(auth="1000/min", login_username="3/min")

    # when one attempt goes through each path
    form_login(ADMIN_LOGIN)
    form_login(SESSION_LOGIN)
    token_login(APIClient())

    # then the fourth, on any path, is refused
    assert token_login(APIClient(), password="correct-horse-battery").status_code == 429
    assert form_login(ADMIN_LOGIN).status_code == 429


def test_a_login_form_that_is_not_filled_in_counts_nothing(user, throttle_rates):
    # given
    throttle_rates(auth="1/min", login_username="1/min")

    # when the form comes without a password twice
    empty = [Client().post(SESSION_LOGIN, {"username": "alice"}).status_code for _ in range(2)]

    # then the form asks for it, and the one attempt is still there
    assert empty == [200, 200]
    assert form_login(SESSION_LOGIN, password="correct-horse-battery").status_code == 302


# --- Registration -----------------------------------------------------------------------------


def test_registrations_are_throttled_per_address_whatever_the_header(db, throttle_rates):
    # given 3 registrations an hour per address
    throttle_rates(register="3/hour")
    client = APIClient(REMOTE_ADDR="198.51.100.1")

    # when 100 registrations come from one socket with 100 forged addresses
    codes = [
        client.post(
            REGISTER,
            {"username": f"bot{i}", "password": "a-long-passphrase-42"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(100)
    ]

    # then 3 accounts were made and funded, and nothing for the other 97
    assert codes == [201] * 3 + [429] * 97
    assert sorted(User.objects.values_list("username", flat=True)) == ["bot0", "bot1", "bot2"]
    assert UsdBalance.objects.count() == 3
    assert CashTransaction.objects.count() == 3


def test_registration_from_another_address_is_not_throttled_by_the_first(db, throttle_rates):
    # given one address has spent its allowance
    throttle_rates(register="1/hour")
    APIClient(REMOTE_ADDR="198.51.100.1").post(REGISTER, {"username": "a1", "password": "a-long-passphrase-42"})

    # when another address registers
    response = APIClient(REMOTE_ADDR="198.51.100.2").post(
        REGISTER, {"username": "b1", "password": "a-long-passphrase-42"}, format="json"
    )

    # then
    assert response.status_code == 201
