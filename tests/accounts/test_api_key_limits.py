"""What an API key may do: trade and read. Creating or revoking keys, logging out, changing the
password and moving cash in or out need the token or a session: with a key they are a 403
``permission_denied`` that says so, and nothing changes (docs/DESIGN.md, "Permissions")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import create_api_key
from balances.models import CashTransaction, UsdBalance
from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code

API = "/api/v1"
PASSWORD = "correct-horse-battery"  # the make_user fixture's


def with_key(key_id: str, secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)
    return client


@pytest.fixture
def key_client(user) -> APIClient:
    new = create_api_key(user=user, name="grid bot")
    return with_key(new.api_key.key_id, new.secret_key)


@pytest.fixture
def two_keys(user):
    """Two API keys of the user (one to send, one to try to revoke)."""
    return create_api_key(user=user, name="bot"), create_api_key(user=user, name="other bot")


@pytest.fixture
def nothing_changed(user, auth_client, two_keys):
    """Everything the refused requests could change, and a check that none of it did."""
    auth_client.get(f"{API}/balance/")  # the token exists and works before

    def state() -> dict:
        usd = UsdBalance.objects.get(user=user)
        user.refresh_from_db()
        return {
            "keys": sorted(ApiKey.objects.values_list("key_id", "revoked_at", "password_fingerprint")),
            "tokens": sorted(Token.objects.values_list("key", flat=True)),
            "password": user.password,
            "usd": (usd.current_balance, usd.held),
            "cash_rows": CashTransaction.objects.count(),
        }

    before = state()

    def check() -> None:
        assert state() == before
        assert auth_client.get(f"{API}/balance/").status_code == 200

    return check


@pytest.mark.parametrize(
    ("method", "path", "body", "what"),
    [
        ("post", "/api-keys/", {"name": "successor"}, "create or revoke API keys"),
        ("delete", "/api-keys/{own_key_id}/", None, "create or revoke API keys"),
        ("delete", "/api-keys/{other_key_id}/", None, "create or revoke API keys"),
        ("post", "/auth/logout/", None, "log out (end tokens or sessions)"),
        ("post", "/balance/deposit/", {"amount": "100.00"}, "deposit or withdraw cash"),
        ("post", "/balance/withdraw/", {"amount": "100.00"}, "deposit or withdraw cash"),
        ("post", "/account/reset/", {"cash": "1.00"}, "reset the account"),
        (
            "post",
            "/auth/password/",
            {"old_password": PASSWORD, "new_password": "another-long-passphrase-43"},
            "change the password",
        ),
    ],
    ids=[
        "create-key",
        "revoke-itself",
        "revoke-another-key",
        "logout",
        "deposit",
        "withdraw",
        "reset-account",
        "change-password",
    ],
)
def test_an_api_key_cannot_touch_credentials_or_move_cash(two_keys, nothing_changed, method, path, body, what):
    # given a key, and another key of the same user
    own, other = two_keys
    client = with_key(own.api_key.key_id, own.secret_key)
    url = API + path.format(own_key_id=own.api_key.key_id, other_key_id=other.api_key.key_id)

    # when
    response = getattr(client, method)(url, body, format="json")

    # then
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"
    assert response.json()["error"]["message"] == (
        f"API keys cannot {what}; use your token (auth/token/) or a session."
    )
    nothing_changed()
    assert client.get(f"{API}/balance/").status_code == 200  # the key itself still works


def test_a_key_minted_by_a_key_cannot_outlive_the_first_ones_revocation(user, auth_client, key_client):
    # when a leaked key tries to make itself a successor, and its owner revokes it
    successor = key_client.post(f"{API}/api-keys/", {"name": "successor"}, format="json")
    auth_client.delete(f"{API}/api-keys/{ApiKey.objects.get().key_id}/")

    # then there is no successor, and the leaked key is dead
    assert successor.status_code == 403
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0
    assert key_client.get(f"{API}/balance/").status_code == 401


def test_an_api_key_still_lists_the_keys_and_reads_everything(user, key_client, btc_at_50k):
    # given
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))

    # then
    for path in ("/api-keys/", "/balance/", "/portfolio/", "/orders/", "/cash-transactions/", "/asset-balances/"):
        assert key_client.get(API + path).status_code == 200, path
    assert [key["name"] for key in key_client.get(f"{API}/api-keys/").json()] == ["grid bot"]


def test_an_api_key_places_replaces_cancels_and_closes_positions(user, key_client, btc_at_50k):
    # when
    bought = key_client.post(
        f"{API}/orders/", {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.02"}, format="json"
    )
    resting = key_client.post(
        f"{API}/orders/",
        {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "order_price": "1000"},
        format="json",
    )
    replaced = key_client.patch(f"{API}/orders/{resting.json()['order_id']}/", {"order_price": "1100"}, format="json")
    cancelled = key_client.post(f"{API}/orders/{replaced.json()['order_id']}/cancel/")
    closed_half = key_client.post(f"{API}/asset-balances/BTC/close/", {"percentage": "50"}, format="json")
    closed_all = key_client.post(f"{API}/asset-balances/close-all/")
    cancel_all = key_client.post(f"{API}/orders/cancel-all/")

    # then
    assert [r.status_code for r in (bought, resting, replaced, cancelled, closed_half, closed_all, cancel_all)] == [
        201,
        201,
        200,
        200,
        201,
        200,
        200,
    ]
    assert (bought.json()["status"], cancelled.json()["status"]) == ("COMPLETED", "CANCELLED")
    assert [closed["status"] for closed in closed_all.json()["closed"]] == [201]
    assert Order.objects.filter(user=user, status=Order.Status.COMPLETED).count() == 3
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")
