"""Acting on another user's order through /api/v1/orders/{id}/: viewing needs the back-office
view permission (Support, Operations, a superuser), cancelling the cancel permission (Support,
Operations), replacing the replace permission (Operations, a superuser), never Support; anyone
else gets 404, never 403, and nothing moves. The staff member is recorded on the order as its
actor (docs/DESIGN.md, "Permissions")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.services import issue_token
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.api import error_code

ORDERS = "/api/v1/orders/"

ROLES = ["stranger", "staff_without_group", "support", "operations", "superuser", "owner"]

# The answer each role gets on carol's resting order.
VIEW = {"stranger": 404, "staff_without_group": 404, "support": 200, "operations": 200, "superuser": 200, "owner": 200}
CANCEL = VIEW
REPLACE = {**VIEW, "support": 404}


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def carols_order(carol, btc_at_50k) -> Order:
    """A limit BUY far below the market: PENDING, holding 0.01 x 1000 = 10.00 USD."""
    return place_order(
        user=carol,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("1000")),
    ).order


@pytest.fixture
def as_role(make_user, staff_groups, carol):
    """The caller for a role, with a resting order of their own (what a misdirected cancel-all
    would cancel), and a client logged in with their token."""

    def make(role: str):
        if role == "owner":
            caller = carol
        else:
            extra = {
                "stranger": {},
                "staff_without_group": {"is_staff": True},
                "support": {"is_staff": True},
                "operations": {"is_staff": True},
                "superuser": {"is_staff": True, "is_superuser": True},
            }[role]
            caller = make_user(role, **extra)
            if role in ("support", "operations"):
                caller.groups.add(staff_groups[role.capitalize()])
            place_order(
                user=caller,
                request=OrderRequest(
                    asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("900")
                ),
            )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=caller).key}")
        return caller, client

    return make


def _everything(money_snapshot, *users) -> dict:
    return {
        "money": [money_snapshot(user) for user in users],
        "orders": sorted(Order.objects.values_list("order_id", "status", "actor_id", "replaced_by_id")),
    }


@pytest.mark.parametrize("role", ROLES)
def test_viewing_another_users_order_needs_the_back_office_view_permission(as_role, carols_order, role):
    # given
    _caller, client = as_role(role)

    # when
    response = client.get(f"{ORDERS}{carols_order.pk}/")

    # then
    assert response.status_code == VIEW[role]
    if VIEW[role] == 200:
        assert (response.json()["order_id"], response.json()["username"]) == (str(carols_order.pk), "carol")
    else:
        assert error_code(response) == "not_found"


@pytest.mark.parametrize("role", ROLES)
def test_cancelling_another_users_order_needs_the_cancel_permission_and_records_the_staff_member(
    as_role, carol, carols_order, money_snapshot, role
):
    # given
    caller, client = as_role(role)
    before = _everything(money_snapshot, carol, caller)

    # when
    response = client.post(f"{ORDERS}{carols_order.pk}/cancel/")

    # then
    assert response.status_code == CANCEL[role]
    carols_order.refresh_from_db()
    if CANCEL[role] == 404:
        assert error_code(response) == "not_found"
        assert _everything(money_snapshot, carol, caller) == before
        return
    staff = role != "owner"
    assert (carols_order.status, carols_order.held_amount) == (Order.Status.CANCELLED, Decimal("0.00"))
    assert carols_order.actor == (caller if staff else None)
    assert response.json()["by_back_office"] is staff
    assert money_snapshot(carol)["usd"] == (Decimal("10000.00"), Decimal("0.00"))
    assert reconcile_ledger() == []


@pytest.mark.parametrize("role", ROLES)
def test_replacing_another_users_order_needs_the_replace_permission_never_supports_and_records_the_staff_member(
    as_role, carol, carols_order, money_snapshot, role
):
    # given
    caller, client = as_role(role)
    before = _everything(money_snapshot, carol, caller)

    # when
    response = client.patch(f"{ORDERS}{carols_order.pk}/", {"order_price": "1100"}, format="json")

    # then
    assert response.status_code == REPLACE[role]
    carols_order.refresh_from_db()
    if REPLACE[role] == 404:
        assert error_code(response) == "not_found"
        assert _everything(money_snapshot, carol, caller) == before
        return
    staff = role != "owner"
    new = Order.objects.get(pk=response.json()["order_id"])
    assert (carols_order.status, carols_order.replaced_by_id, carols_order.actor) == (
        Order.Status.REPLACED,
        new.pk,
        caller if staff else None,
    )
    assert (new.user, new.order_price, new.held_amount, new.actor) == (carol, Decimal("1100"), Decimal("11.00"), None)
    assert money_snapshot(carol)["usd"] == (Decimal("10000.00"), Decimal("11.00"))
    assert reconcile_ledger() == []


@pytest.mark.parametrize("role", ROLES)
def test_cancel_all_for_another_user_needs_the_cancel_permission_and_never_cancels_the_callers_own(
    as_role, carol, carols_order, money_snapshot, role
):
    # given
    caller, client = as_role(role)
    before = _everything(money_snapshot, carol, caller)

    # when
    response = client.post(f"{ORDERS}cancel-all/?username=carol")

    # then
    assert response.status_code == CANCEL[role]
    if CANCEL[role] == 404:
        assert error_code(response) == "not_found"
        assert _everything(money_snapshot, carol, caller) == before
        return
    staff = role != "owner"
    assert [(o["order_id"], o["by_back_office"]) for o in response.json()] == [(str(carols_order.pk), staff)]
    carols_order.refresh_from_db()
    assert (carols_order.status, carols_order.actor) == (Order.Status.CANCELLED, caller if staff else None)
    if staff:
        assert money_snapshot(caller)["pending_orders"] == before["money"][1]["pending_orders"]
    assert reconcile_ledger() == []


def test_the_owners_own_cancel_and_replace_record_no_actor(auth_client, user, btc_at_50k):
    # given
    order = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("1000")),
    ).order

    # when
    replaced = auth_client.patch(f"{ORDERS}{order.pk}/", {"order_price": "1100"}, format="json").json()
    cancelled = auth_client.post(f"{ORDERS}{replaced['order_id']}/cancel/").json()

    # then
    assert (replaced["by_back_office"], cancelled["by_back_office"]) == (False, False)
    assert list(Order.objects.filter(user=user).values_list("actor_id", flat=True)) == [None, None]


def test_the_order_detail_checks_the_permission_only_for_another_users_order(
    as_role, carols_order, django_assert_num_queries
):
    # given
    _carol, owner = as_role("owner")
    _support, support = as_role("support")
    _root, superuser = as_role("superuser")
    url = f"{ORDERS}{carols_order.pk}/"
    for client in (owner, support, superuser):
        client.get(url)

    # then the owner: token + user, order + asset + user, as before
    with django_assert_num_queries(2):
        assert owner.get(url).status_code == 200
    # back-office staff: and the user's and the groups' permissions (Django's has_perm)
    with django_assert_num_queries(4):
        assert support.get(url).status_code == 200
    # a superuser holds every permission without a query
    with django_assert_num_queries(2):
        assert superuser.get(url).status_code == 200


def test_cancel_all_for_another_user_reads_nothing_per_order(as_role, carol, btc_at_50k, django_assert_num_queries):
    # given
    _support, support = as_role("support")
    support.post(f"{ORDERS}cancel-all/?username=carol")

    def rest(count: int) -> None:
        for i in range(count):
            place_order(
                user=carol,
                request=OrderRequest(
                    asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal(1000 + i)
                ),
            )

    # then token + user, the back-office group, the permissions (2), carol; then savepoint, the
    # user lock, the pending orders, per order an UPDATE of it and of the hold, their events
    # (one statement for all), release
    rest(1)
    with django_assert_num_queries(12):
        assert len(support.post(f"{ORDERS}cancel-all/?username=carol").json()) == 1
    rest(3)
    with django_assert_num_queries(16):
        assert len(support.post(f"{ORDERS}cancel-all/?username=carol").json()) == 3
