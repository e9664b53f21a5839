"""Shared fixtures. Tests run against a real PostgreSQL: ``DATABASE_URL`` when set, the
embedded server otherwise."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import issue_token
from assets.models import Asset
from assets.prices import Quote, store_quotes
from assets.selectors import forget_assets
from tests.support.price_records import record_btc_minutes

User = get_user_model()

# The local CoinGecko server (a real HTTP server on 127.0.0.1) for every test that wants it.
pytest_plugins = ["tests.support.price_server"]


@pytest.fixture
def throttle_clock_frozen(monkeypatch):
    """Throttles count per fixed window (core/api/throttles.py): requests that
    straddle a window boundary start a new count, so a test of the limit once failed at a
    minute's turn. DRF's throttles read time through their ``timer`` attribute; hold it at
    the middle of a window."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "timer", staticmethod(lambda: 1_800_000_030.0))


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Users are cheap in tests: the production hasher costs ~0.3 s a password and proves
    # nothing here. A test of password hashing itself sets PASSWORD_HASHERS back.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def set_price(settings):
    """``set_price("BTC", "50000")``: the market price every trade sees until changed.

    The quote becomes the asset's last good price as if the provider had just answered, and
    is reused for an hour so that a slow test never falls back to the simulated market
    halfway through."""
    settings.PRICE_CACHE_SECONDS = 3600

    def set_(
        asset_id: str,
        price: str | Decimal,
        *,
        as_of: datetime | None = None,
        source: str = "test",
        volume: Decimal | None = None,
    ) -> Quote:
        quote = Quote(
            asset_id=asset_id, price=Decimal(price), as_of=as_of or timezone.now(), source=source, volume=volume
        )
        store_quotes([quote])
        return quote

    return set_


@pytest.fixture(autouse=True)
def _clear_cache():
    # The cache holds throttle counters, breaker openings, price-history marks and replica pins,
    # and each process keeps recently read assets; each test starts from nothing.
    cache.clear()
    forget_assets()
    yield
    cache.clear()
    forget_assets()


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", password: str = "correct-horse-battery", **extra):
        return User.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def staff_user(make_user):
    return make_user("staffer", is_staff=True)


@pytest.fixture
def staff_groups(db):
    """The back-office groups with the permissions their migrations give them, by name.

    Restored every time rather than trusted: a transactional test flushes them, and with
    ``--reuse-db`` a run that was killed mid-test can leave a group behind without its
    permissions (CI once failed 70 back-office tests on such a database)."""
    from importlib import import_module

    from django.apps import apps as django_apps
    from django.contrib.auth.models import Group

    import_module("balances.migrations.0002_staff_groups").create_staff_groups(django_apps, None)
    import_module("accounts.migrations.0002_api_key_permissions").grant_api_key_permissions(django_apps, None)
    import_module("orders.migrations.0008_operations_replace_orders").grant_replace_order(django_apps, None)
    import_module("balances.migrations.0009_operations_reset_accounts").grant_reset_permissions(django_apps, None)
    import_module("orders.migrations.0011_operations_set_fill_models").grant(django_apps, None)
    return {group.name: group for group in Group.objects.filter(name__in=["Support", "Operations"])}


@pytest.fixture
def support_staff(make_user, staff_groups):
    """Back-office staff in the Support group."""
    user = make_user("sam_support", is_staff=True)
    user.groups.add(staff_groups["Support"])
    return user


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def auth_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    return client


@pytest.fixture
def make_asset(db):
    def make(asset_id: str = "BTC", **fields) -> Asset:
        defaults = {
            "name": asset_id.title(),
            "quantity_decimals": 8,
            "coingecko_id": asset_id.lower(),
            "reference_price": Decimal("100.00"),
            "is_active": True,
        }
        defaults.update(fields)
        return Asset.objects.create(asset_id=asset_id, **defaults)

    return make


@pytest.fixture
def btc(make_asset):
    return make_asset("BTC", name="Bitcoin", coingecko_id="bitcoin", reference_price=Decimal("50000"))


@pytest.fixture
def btc_at_50k(btc, set_price):
    """BTC with a current price of 50000."""
    set_price("BTC", "50000")
    return btc


@pytest.fixture
def eth(make_asset):
    return make_asset("ETH", name="Ethereum", coingecko_id="ethereum", reference_price=Decimal("2500"))


@pytest.fixture
def btc_at_50k_eth_at_2500(btc, eth, set_price):
    """BTC with a current price of 50000 and ETH with one of 2500."""
    set_price("BTC", "50000")
    set_price("ETH", "2500")


@pytest.fixture
def btc_minutes(btc):
    """BTC's recorded prices minute by minute from tests/support/price_records.py's T0."""
    record_btc_minutes(btc)
    return btc
