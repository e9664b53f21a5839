"""Fixtures of the back-office tests: staff in each group, a customer with a holding and a
resting limit order, and logged-in admin clients."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from balances.services import deposit
from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest


@pytest.fixture
def make_staff(make_user, staff_groups):
    def make(username: str, group: str | None = None, **extra):
        user = make_user(username, is_staff=True, **extra)
        if group is not None:
            user.groups.add(staff_groups[group])
        return user

    return make


@pytest.fixture
def support_user(make_staff):
    return make_staff("sue_support", "Support")


@pytest.fixture
def operations_user(make_staff):
    return make_staff("olga_ops", "Operations")


@pytest.fixture
def superuser(make_staff):
    return make_staff("root_admin", is_superuser=True)


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def support_client(support_user):
    return _client_for(support_user)


@pytest.fixture
def operations_client(operations_user):
    return _client_for(operations_user)


@pytest.fixture
def superuser_client(superuser):
    return _client_for(superuser)


@pytest.fixture
def client_for():
    return _client_for


@pytest.fixture
def customer(make_user):
    return make_user("carol")


@pytest.fixture
def resting_buy(customer, btc) -> Order:
    """A limit BUY far below the market (BTC ~50000): PENDING, holding 0.01 x 1000 = 10.00 USD."""
    return place_order(
        user=customer,
        request=OrderRequest(
            asset_id="BTC", order_type=Order.Type.BUY, quantity=Decimal("0.01"), order_price=Decimal("1000")
        ),
    ).order


@pytest.fixture
def completed_buy(customer, btc) -> Order:
    deposit(user=customer, amount=Decimal("1000.00"))
    return place_order(
        user=customer, request=OrderRequest(asset_id="BTC", order_type=Order.Type.BUY, quantity=Decimal("0.002"))
    ).order


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the admin in a real headless Chromium (Playwright)")
