"""API keys for programs (docs/DESIGN.md, "Permissions"): made and listed at api-keys/, the secret shown
once and stored hashed, the APCA headers authenticate on /api/v1/, revoked keys never again."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import MAX_ACTIVE_KEYS, create_api_key
from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from tests.support.api import error_code

User = get_user_model()

KEYS = "/api/v1/api-keys/"
BALANCE = "/api/v1/balance/"


def with_key(key_id: str, secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)
    return client


@pytest.fixture
def new_key(auth_client) -> dict:
    response = auth_client.post(KEYS, {"name": "grid bot"}, format="json")
    assert response.status_code == 201
    return response.json()


def test_creating_a_key_answers_its_secret_once_and_stores_only_its_hash(auth_client, user):
    # when
    response = auth_client.post(KEYS, {"name": "grid bot"}, format="json")

    # then
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"key_id", "secret_key", "name", "created_at"}
    assert body["name"] == "grid bot"
    assert body["key_id"].startswith("PK")
    assert len(body["key_id"]) == 20
    assert len(body["secret_key"]) == 40
    stored = ApiKey.objects.get(key_id=body["key_id"])
    assert stored.user == user
    assert stored.secret_hash == hashlib.sha256(body["secret_key"].encode()).hexdigest()
    assert body["secret_key"] not in str(ApiKey.objects.values().get())


def test_listing_keys_shows_no_secret_and_only_the_callers_active_keys(auth_client, user, other_user):
    # given two keys of the caller (one revoked) and one of another user
    kept = create_api_key(user=user, name="kept").api_key
    gone = create_api_key(user=user, name="gone").api_key
    create_api_key(user=other_user, name="bob's")
    auth_client.delete(f"{KEYS}{gone.key_id}/")

    # when
    response = auth_client.get(KEYS)

    # then
    assert response.status_code == 200
    assert response.json() == [
        {"key_id": kept.key_id, "name": "kept", "created_at": kept.created_at.isoformat().replace("+00:00", "Z")}
    ]


def test_the_apca_headers_authenticate_and_trade(new_key, user, btc, set_price):
    # given
    client = with_key(new_key["key_id"], new_key["secret_key"])
    set_price("BTC", "50000")

    # when
    balance = client.get(BALANCE)
    order = client.post("/api/v1/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}, format="json")

    # then
    assert balance.json()["current_balance"] == "10000.00"
    assert order.status_code == 201
    assert Order.objects.get().user == user
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("9500.00")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_APCA_API_KEY_ID": "{key_id}", "HTTP_APCA_API_SECRET_KEY": "wrong-secret"},
        {"HTTP_APCA_API_KEY_ID": "PKNOSUCHKEY000000000", "HTTP_APCA_API_SECRET_KEY": "{secret_key}"},
        {"HTTP_APCA_API_KEY_ID": "{key_id}"},
        {"HTTP_APCA_API_KEY_ID": "", "HTTP_APCA_API_SECRET_KEY": "{secret_key}"},
        {"HTTP_APCA_API_KEY_ID": "x" * 5000, "HTTP_APCA_API_SECRET_KEY": "{secret_key}"},
        {"HTTP_APCA_API_KEY_ID": "{key_id}", "HTTP_APCA_API_SECRET_KEY": "{secret_key}\u00e9"},
    ],
    ids=["wrong-secret", "unknown-id", "no-secret", "empty-id", "long-id", "non-ascii-secret"],
)
def test_a_bad_key_is_401_in_the_error_shape_and_moves_nothing(new_key, user, btc, set_price, headers):
    # given
    set_price("BTC", "50000")
    client = APIClient()
    client.credentials(**{name: value.format(**new_key) for name, value in headers.items()})

    # when
    read = client.get(BALANCE)
    order = client.post("/api/v1/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}, format="json")

    # then
    assert (read.status_code, order.status_code) == (401, 401)
    assert error_code(read) == error_code(order) == "not_authenticated"
    assert Order.objects.count() == 0
    assert CashTransaction.objects.filter(user=user).count() == 1


def test_deleting_a_key_revokes_it_for_good(auth_client, new_key):
    # when
    response = auth_client.delete(f"{KEYS}{new_key['key_id']}/")

    # then
    assert response.status_code == 204
    refused = with_key(new_key["key_id"], new_key["secret_key"]).get(BALANCE)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "Invalid or revoked API key."
    assert ApiKey.objects.get().revoked_at is not None
    again = auth_client.delete(f"{KEYS}{new_key['key_id']}/")
    assert again.status_code == 404
    assert error_code(again) == "not_found"


def test_another_users_key_is_404_and_keeps_working(api_client, other_user, new_key):
    # given bob, logged in
    api_client.force_authenticate(other_user)

    # when bob deletes alice's key
    response = api_client.delete(f"{KEYS}{new_key['key_id']}/")

    # then
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert with_key(new_key["key_id"], new_key["secret_key"]).get(BALANCE).status_code == 200


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "x" * 101}, {"name": ["a"]}, {"name": None}])
def test_a_key_without_a_usable_name_is_400_and_makes_nothing(auth_client, payload):
    response = auth_client.post(KEYS, payload, format="json")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert ApiKey.objects.count() == 0


def test_keys_need_a_logged_in_user(api_client, db):
    assert api_client.get(KEYS).status_code == 401
    assert api_client.post(KEYS, {"name": "x"}, format="json").status_code == 401
    assert ApiKey.objects.count() == 0


def test_creating_a_key_past_the_cap_is_409_and_makes_nothing(auth_client, user):
    # given the cap of active keys
    for i in range(MAX_ACTIVE_KEYS):
        create_api_key(user=user, name=f"k{i}")

    # when
    response = auth_client.post(KEYS, {"name": "one more"}, format="json")

    # then
    assert response.status_code == 409
    assert error_code(response) == "conflict"
    assert ApiKey.objects.filter(user=user).count() == MAX_ACTIVE_KEYS


def test_a_key_of_a_deactivated_user_is_refused(new_key, user):
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert with_key(new_key["key_id"], new_key["secret_key"]).get(BALANCE).status_code == 401


def test_key_authentication_costs_one_query_as_a_token_does(auth_client, new_key, django_assert_num_queries):
    # given both warmed up
    client = with_key(new_key["key_id"], new_key["secret_key"])
    client.get(BALANCE)
    auth_client.get(BALANCE)

    # then key + user in one query, and the balance
    with django_assert_num_queries(2):
        assert client.get(BALANCE).status_code == 200
    with django_assert_num_queries(2):
        assert auth_client.get(BALANCE).status_code == 200


def test_the_secret_hash_column_holds_only_sha256_hex(user):
    with pytest.raises(IntegrityError):
        ApiKey.objects.create(key_id="PKTEST", user=user, name="x", secret_hash="plain-secret")


def test_an_empty_name_is_refused_by_the_database(user):
    with pytest.raises(IntegrityError):
        ApiKey.objects.create(key_id="PKTEST", user=user, name="", secret_hash="0" * 64)


def test_a_session_login_creates_a_key(user):
    # given the browsable API's session
    client = APIClient()
    client.force_login(user)

    # when
    response = client.post(KEYS, {"name": "from the browser"}, format="json")

    # then
    assert response.status_code == 201
    assert with_key(response.json()["key_id"], response.json()["secret_key"]).get(BALANCE).status_code == 200
