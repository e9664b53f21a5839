"""Staff read other users' data through the API only with a back-office permission: the
Support or Operations group, or a superuser, the admin's rule (docs/DESIGN.md, "Permissions")."""

from __future__ import annotations

import pytest

from accounts.services import issue_token
from tests.support.api import error_code

PATHS = ["/api/v1/balance/", "/api/v1/orders/", "/api/v1/cash-transactions/", "/api/v1/portfolio/"]


@pytest.fixture
def as_user(api_client):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
        return api_client

    return login


@pytest.mark.parametrize("path", PATHS)
def test_staff_without_a_back_office_group_get_404_like_anyone(as_user, staff_user, other_user, path):
    # when a plain is_staff user asks for bob's data
    response = as_user(staff_user).get(path, {"username": "bob"})

    # then as for any other user
    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.parametrize("group", ["Support", "Operations"])
@pytest.mark.parametrize("path", PATHS)
def test_back_office_staff_read_another_users_data(as_user, make_user, staff_groups, other_user, group, path):
    # given
    staffer = make_user("staffer", is_staff=True)
    staffer.groups.add(staff_groups[group])

    # when
    response = as_user(staffer).get(path, {"username": "bob"})

    # then
    assert response.status_code == 200


def test_a_superuser_reads_another_users_data(as_user, make_user, other_user):
    root = make_user("root", is_staff=True, is_superuser=True)
    assert as_user(root).get("/api/v1/balance/", {"username": "bob"}).json()["current_balance"] == "10000.00"


def test_a_group_member_who_is_not_staff_gets_404(as_user, make_user, staff_groups, other_user):
    # given someone left in the group after their staff flag was taken away
    former = make_user("former")
    former.groups.add(staff_groups["Support"])

    # then the admin would not let them in, and neither does the API
    assert as_user(former).get("/api/v1/balance/", {"username": "bob"}).status_code == 404


def test_an_unknown_username_is_404_for_back_office_staff_too(as_user, support_staff):
    assert as_user(support_staff).get("/api/v1/balance/", {"username": "nobody"}).status_code == 404


def test_the_permission_check_costs_one_query_and_only_when_asking_for_another_user(
    as_user, support_staff, other_user, django_assert_num_queries
):
    client = as_user(support_staff)
    client.get("/api/v1/balance/")
    # own data: token+user, balance
    with django_assert_num_queries(2):
        client.get("/api/v1/balance/")
    # another user's: token+user, group check, user lookup, balance
    with django_assert_num_queries(4):
        client.get("/api/v1/balance/", {"username": "bob"})
