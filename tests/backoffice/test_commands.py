"""The back-office commands: add_staff_to_group and seed_demo."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from balances.models import AssetBalance, UsdBalance
from orders.models import Order
from orders.selectors import reconcile_ledger

User = get_user_model()


def test_add_staff_to_group_makes_the_user_staff_in_the_group(make_user, staff_groups):
    # given
    user = make_user("newhire")
    out = io.StringIO()

    # when
    call_command("add_staff_to_group", "newhire", "Operations", stdout=out)

    # then
    user.refresh_from_db()
    assert user.is_staff is True
    assert list(user.groups.values_list("name", flat=True)) == ["Operations"]
    assert user.has_perm("balances.adjust_balance") is True
    assert "newhire is staff and in Operations." in out.getvalue()


def test_add_staff_to_group_refuses_unknown_users_and_groups(make_user, staff_groups):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("add_staff_to_group", "ghost", "Support")
    make_user("newhire")
    with pytest.raises(CommandError):
        call_command("add_staff_to_group", "newhire", "Admins")
    assert User.objects.get(username="newhire").is_staff is False


def test_seed_demo_needs_assets(db):
    with pytest.raises(CommandError, match=re.escape("run `python manage.py seed_assets` first")):
        call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    assert not User.objects.filter(username__startswith="demo_").exists()


def test_seed_demo_creates_users_with_history_and_is_rerunnable(btc, eth):
    # when
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO())

    # then
    printed = dict(re.findall(r"username (\S+)  password (\S+)", out.getvalue()))
    assert sorted(printed) == ["demo_alice", "demo_bob", "demo_carol", "demo_trader"]
    for username, password in printed.items():
        user = User.objects.get(username=username)
        assert user.check_password(password)
        if username == "demo_trader":
            continue  # its week: test_seed_demo_leaves_a_week_of_history
        assert user.is_staff is False
        statuses = sorted(Order.objects.filter(user=user).values_list("order_type", "status"))
        assert statuses == [
            ("BUY", "CANCELLED"),
            ("BUY", "COMPLETED"),
            ("BUY", "COMPLETED"),
            ("BUY", "PENDING"),
            ("SELL", "COMPLETED"),
        ]
        assert AssetBalance.objects.filter(user=user, quantity__gt=0).count() == 2
        assert UsdBalance.objects.get(user=user).held > Decimal("0")
    assert reconcile_ledger() == []

    # when run again: nothing new
    orders = Order.objects.count()
    again = io.StringIO()
    call_command("seed_demo", stdout=again, stderr=io.StringIO())
    assert Order.objects.count() == orders
    assert "password" not in again.getvalue()
    assert "demo_alice: exists, skipped." in again.getvalue()
    assert "demo_trader: exists, skipped." in again.getvalue()


def test_seed_demo_leaves_a_week_of_history(settings, btc, eth):
    from datetime import timedelta

    from django.utils import timezone

    from assets.models import PriceRecord
    from assets.selectors import Timeframe
    from balances.history import Period, get_activities, get_portfolio_history
    from balances.models import AssetTransaction, CashTransaction

    # given
    settings.PRICE_PROVIDER = "simulated"

    # when
    started = timezone.now()  # the week's prices end when the command began, not when it ended
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())

    # then demo_trader opened a week ago and traded every 8 hours since, through the services
    trader = User.objects.get(username="demo_trader")
    now = timezone.now()
    assert now - timedelta(days=7, minutes=5) < trader.date_joined < now - timedelta(days=6, hours=23)
    fills = list(AssetTransaction.objects.filter(user=trader).order_by("created_at"))
    assert len(fills) == 19
    assert {f.transaction_type for f in fills} == {"BUY", "SELL"}
    assert (fills[-1].created_at - fills[0].created_at) > timedelta(days=6)
    kinds = sorted(CashTransaction.objects.filter(user=trader).values_list("transaction_type", flat=True))
    assert (kinds.count("DEPOSIT"), kinds.count("WITHDRAWAL")) == (2, 1)
    assert reconcile_ledger() == []
    # with a price a minute for the week, for every active asset
    for asset in (btc, eth):
        week = PriceRecord.objects.filter(asset=asset, as_of__gt=started - timedelta(days=7), as_of__lte=started)
        assert week.count() >= 7 * 1440
    # so the week's history moves, and ends at today's value
    history = get_portfolio_history(user=trader, period=Period.WEEK_1, timeframe=Timeframe.HOUR_1)
    assert len(set(history.equity)) > 100
    assert len(get_activities(user=trader, page_size=500)) == 19 + 3


def test_add_staff_to_group_creates_the_account_when_asked(staff_groups):
    # given no account named sam; when
    out = io.StringIO()
    call_command("add_staff_to_group", "sam", "Support", "--create", stdout=out)
    # then sam is staff in Support, can log in with the printed password, and has a USD balance
    sam = User.objects.get(username="sam")
    password = out.getvalue().rsplit("password ", 1)[1].strip()
    assert (sam.is_staff, sam.is_superuser) == (True, False)
    assert list(sam.groups.values_list("name", flat=True)) == ["Support"]
    assert sam.check_password(password)
    assert UsdBalance.objects.filter(user=sam).count() == 1


def test_add_staff_to_group_without_create_names_the_flag(staff_groups):
    with pytest.raises(CommandError, match="add --create"):
        call_command("add_staff_to_group", "ghost", "Support")
