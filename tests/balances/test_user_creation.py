"""Whatever creates a user, the user starts with exactly one funded USD balance, explained
by exactly one DEPOSIT row (docs/DESIGN.md, "Ledgers")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from balances.models import CashTransaction, UsdBalance
from balances.services import register_user
from core.exceptions import InvalidRequest
from orders.selectors import reconcile_ledger

User = get_user_model()


def create_with_create_user(username: str, client) -> None:
    User.objects.create_user(username=username, password="correct-horse-battery")


def create_with_register_user(username: str, client) -> None:
    register_user(username=username, password="correct-horse-battery", email=f"{username}@example.com")


def create_with_createsuperuser(username: str, client) -> None:
    call_command("createsuperuser", interactive=False, username=username, email=f"{username}@example.com")


def create_with_admin_form(username: str, client) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "correct-horse-battery")
    client.force_login(admin)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": username,
            "password1": "correct-horse-battery",
            "password2": "correct-horse-battery",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]


CREATORS = [
    pytest.param(create_with_create_user, id="create_user"),
    pytest.param(create_with_register_user, id="register_user"),
    pytest.param(create_with_createsuperuser, id="createsuperuser"),
    pytest.param(create_with_admin_form, id="admin_add_user_form"),
]


@pytest.fixture(autouse=True)
def _superuser_password(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct-horse-battery")


@pytest.mark.django_db
@pytest.mark.parametrize("create", CREATORS)
@pytest.mark.parametrize("initial", ["10000.00", "123.45"])
def test_every_way_of_creating_a_user_opens_one_funded_usd_balance(create, initial, settings, client):
    # given
    settings.INITIAL_USD_BALANCE = Decimal(initial)

    # when
    create("carol", client)

    # then
    carol = User.objects.get(username="carol")
    balance = UsdBalance.objects.get(user=carol)
    assert (balance.current_balance, balance.held) == (Decimal(initial), Decimal("0.00"))
    rows = list(CashTransaction.objects.filter(user=carol).values_list("transaction_type", "amount", "balance_after"))
    assert rows == [("DEPOSIT", Decimal(initial), Decimal(initial))]
    assert reconcile_ledger() == []


@pytest.mark.django_db
@pytest.mark.parametrize("create", CREATORS)
def test_a_zero_initial_balance_opens_an_empty_balance_without_a_deposit(create, settings, client):
    # given
    settings.INITIAL_USD_BALANCE = Decimal("0")

    # when
    create("carol", client)

    # then
    carol = User.objects.get(username="carol")
    balance = UsdBalance.objects.get(user=carol)
    assert (balance.current_balance, balance.held) == (Decimal("0.00"), Decimal("0.00"))
    assert CashTransaction.objects.filter(user=carol).count() == 0
    assert reconcile_ledger() == []


@pytest.mark.django_db
def test_saving_an_existing_user_again_opens_no_second_balance(user):
    # given
    user.email = "alice@example.com"

    # when
    user.save()

    # then
    assert UsdBalance.objects.filter(user=user).count() == 1
    assert CashTransaction.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_registration_that_fails_leaves_no_balance_behind(user):
    # given: "alice" exists already
    users_before = User.objects.count()

    # when / then
    with pytest.raises(InvalidRequest):
        register_user(username="alice", password="correct-horse-battery")
    assert User.objects.count() == users_before
    assert UsdBalance.objects.count() == users_before
    assert CashTransaction.objects.count() == users_before
