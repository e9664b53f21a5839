"""Usernames are unique in any case, and the database says so: two registrations racing
with "Racer" and "racer" end with one account, and the other client gets the 400 a taken
name always gets (accounts migration 0003's unique index on lower(username))."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from rest_framework.test import APIClient

from balances.models import CashTransaction, UsdBalance
from orders.selectors import reconcile_ledger
from tests.support.threads import run_concurrently

User = get_user_model()

TAKEN = {
    "error": {
        "code": "validation_error",
        "message": "The request is not valid.",
        "details": {"username": ["This username is taken."]},
    }
}


def register(username: str):
    def call():
        return APIClient().post(
            "/api/v1/auth/register/", {"username": username, "password": "a-long-passphrase-42"}, format="json"
        )

    return call


@pytest.mark.django_db(transaction=True)
def test_racing_registrations_of_one_name_in_two_cases_make_one_account():
    # given: nobody is called racer yet

    # when
    first, second = run_concurrently(register("Racer"), register("racer"))

    # then: exactly one 201; the other is the ordinary "taken" answer, not a 500
    assert sorted([first.status_code, second.status_code]) == [201, 400]
    winner, loser = (first, second) if first.status_code == 201 else (second, first)
    assert loser.json() == TAKEN
    assert list(User.objects.filter(username__iexact="racer").values_list("username", flat=True)) == [
        winner.json()["username"]
    ]
    assert UsdBalance.objects.filter(user__username__iexact="racer").count() == 1
    assert CashTransaction.objects.filter(user__username__iexact="racer").count() == 1
    assert reconcile_ledger() == []


@pytest.mark.django_db
def test_a_name_differing_only_in_case_breaks_the_unique_index(user):
    # given: "alice" exists

    # when / then: the database refuses whatever path inserts it
    with pytest.raises(IntegrityError, match="auth_user_username_lower_uniq"):
        User.objects.create_user(username="ALICE", password="correct-horse-battery")
