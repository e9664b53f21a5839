"""API keys in the back office (docs/DESIGN.md, "Permissions"): Support sees a user's keys, Operations
revokes them through the service, nobody sees a secret."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import create_api_key

CHANGELIST = "admin:accounts_apikey_changelist"


@pytest.fixture
def customer_key(customer):
    return create_api_key(user=customer, name="grid bot")


def key_works(new_key) -> bool:
    client = APIClient()
    client.credentials(HTTP_APCA_API_KEY_ID=new_key.api_key.key_id, HTTP_APCA_API_SECRET_KEY=new_key.secret_key)
    return client.get("/api/v1/balance/").status_code == 200


def revoke(client, *key_ids):
    return client.post(reverse(CHANGELIST), {"action": "revoke_keys", "_selected_action": list(key_ids)}, follow=True)


def test_support_sees_a_users_keys_and_never_a_secret(support_client, customer, customer_key):
    # when
    changelist = support_client.get(reverse(CHANGELIST))
    detail = support_client.get(reverse("admin:accounts_apikey_change", args=[customer_key.api_key.key_id]))
    user_page = support_client.get(reverse("admin:auth_user_change", args=[customer.pk]))

    # then the key and its name are listed, on the user's page too; no secret and no hash anywhere
    for page in (changelist, detail, user_page):
        html = page.content.decode()
        assert page.status_code == 200
        assert customer_key.api_key.key_id in html
        assert "grid bot" in html
        assert customer_key.secret_key not in html
        assert customer_key.api_key.secret_hash not in html


def test_support_cannot_revoke(support_client, customer_key):
    # when
    changelist = support_client.get(reverse(CHANGELIST))
    response = revoke(support_client, customer_key.api_key.key_id)

    # then the action is not offered, and nothing changed
    assert changelist.context["action_form"] is None  # no action at all is offered to Support
    assert response.status_code == 200
    assert ApiKey.objects.get().revoked_at is None
    assert key_works(customer_key)


def test_operations_revokes_keys_through_the_service(operations_client, operations_user, customer, customer_key):
    # given a second key, already revoked by its owner
    other = create_api_key(user=customer, name="old")
    ApiKey.objects.filter(pk=other.api_key.pk).update(revoked_at="2026-01-01T00:00:00Z")

    # when
    response = revoke(operations_client, customer_key.api_key.key_id, other.api_key.key_id)

    # then the active one is revoked by the operator, the other keeps its first revocation
    assert "Revoked 1 API key(s). 1 selected key(s) were already revoked" in response.content.decode()
    revoked = ApiKey.objects.get(pk=customer_key.api_key.pk)
    assert revoked.revoked_by == operations_user
    assert revoked.revoked_at is not None
    assert ApiKey.objects.get(pk=other.api_key.pk).revoked_by is None
    assert not key_works(customer_key)


def test_nobody_adds_changes_or_deletes_keys_in_the_admin(superuser_client, customer_key):
    key_id = customer_key.api_key.key_id
    assert superuser_client.get(reverse("admin:accounts_apikey_add")).status_code == 403
    assert (
        superuser_client.post(reverse("admin:accounts_apikey_change", args=[key_id]), {"name": "x"}).status_code == 403
    )
    assert (
        superuser_client.post(reverse("admin:accounts_apikey_delete", args=[key_id]), {"post": "yes"}).status_code
        == 403
    )
    assert ApiKey.objects.get().name == "grid bot"


def test_the_key_list_costs_the_same_queries_for_1_key_as_for_20(superuser_client, make_user, operations_user):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert superuser_client.get(reverse(CHANGELIST)).status_code == 200
        return len(captured)

    # given one key, revoked by staff
    from accounts.services import revoke_api_keys

    first = create_api_key(user=make_user("k0"), name="k").api_key
    revoke_api_keys(key_ids=[first.key_id], actor=operations_user)
    superuser_client.get(reverse(CHANGELIST))
    one = queries()

    # when 19 more, each of another user and revoked
    for i in range(1, 20):
        key = create_api_key(user=make_user(f"k{i}"), name="k").api_key
        revoke_api_keys(key_ids=[key.key_id], actor=operations_user)

    # then
    assert queries() == one
