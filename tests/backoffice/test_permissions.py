"""Who may do what in the back office (README, "Back office (Django admin)"), checked through the admin URLs and
the ModelAdmins' has_*_permission."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from assets.models import Asset
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders.models import Order
from tests.backoffice.changelists import BACK_OFFICE_CHANGELISTS

LEDGERS = [CashTransaction, AssetTransaction]


def _perms(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def _request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_migration_gives_support_view_everything_and_cancel(staff_groups):
    # given / when: the migration ran
    support = staff_groups["Support"]

    # then
    assert _perms(support) == {
        "auth.view_user",
        "assets.view_asset",
        "balances.view_usdbalance",
        "balances.view_assetbalance",
        "balances.view_cashtransaction",
        "balances.view_assettransaction",
        "orders.view_order",
        "orders.cancel_order",
        "accounts.view_apikey",
        "balances.view_accountreset",
        "orders.view_accountfillmodel",
    }


def test_migration_gives_operations_support_plus_assets_adjustments_replacing_orders_and_resets(staff_groups):
    assert _perms(staff_groups["Operations"]) == _perms(staff_groups["Support"]) | {
        "assets.add_asset",
        "assets.change_asset",
        "balances.adjust_balance",
        "accounts.revoke_apikey",
        "orders.replace_order",
        "balances.reset_account",
        "orders.change_accountfillmodel",
    }


# --- Support ----------------------------------------------------------------------------


@pytest.mark.parametrize("url_name", BACK_OFFICE_CHANGELISTS)
def test_support_can_view_every_list(support_client, url_name):
    assert support_client.get(reverse(url_name)).status_code == 200


def test_support_can_view_users_orders_and_cancel(support_client, support_user, resting_buy):
    # when
    user_page = support_client.get(reverse("admin:auth_user_change", args=[resting_buy.user_id]))
    order_page = support_client.get(reverse("admin:orders_order_change", args=[resting_buy.pk]))
    changelist = support_client.get(reverse("admin:orders_order_changelist"))

    # then
    assert user_page.status_code == 200
    assert order_page.status_code == 200
    assert "cancel_pending_orders" in dict(changelist.context["action_form"].fields["action"].choices)
    assert admin.site._registry[Order].has_cancel_permission(_request_as(support_user)) is True


def test_support_cannot_edit_or_add_assets(support_client, support_user, btc):
    # when
    add = support_client.get(reverse("admin:assets_asset_add"))
    change = support_client.post(
        reverse("admin:assets_asset_change", args=["BTC"]),
        {"name": "Hacked", "is_active": "", "quantity_decimals": 8, "coingecko_id": "bitcoin", "reference_price": "1"},
    )
    toggle = support_client.post(
        reverse("admin:assets_asset_changelist"), {"action": "suspend_trading", "_selected_action": ["BTC"]}
    )

    # then
    assert add.status_code == 403
    assert change.status_code == 403
    assert toggle.status_code == 200  # the list again: the action is not offered to Support
    btc.refresh_from_db()
    assert (btc.name, btc.is_active, btc.reference_price) == ("Bitcoin", True, Decimal("50000"))
    asset_admin = admin.site._registry[Asset]
    assert asset_admin.has_change_permission(_request_as(support_user)) is False
    assert asset_admin.has_add_permission(_request_as(support_user)) is False


def test_support_cannot_adjust_balances(support_client, customer):
    # given
    balance = UsdBalance.objects.get(user=customer)
    rows_before = CashTransaction.objects.count()

    # when
    get_usd = support_client.get(reverse("admin:balances_usdbalance_adjust_usd", args=[balance.pk]))
    post_usd = support_client.post(
        reverse("admin:balances_usdbalance_adjust_usd", args=[balance.pk]), {"amount": "50", "reason": "goodwill"}
    )
    post_asset = support_client.post(
        reverse("admin:balances_usdbalance_adjust_asset", args=[balance.pk]),
        {"asset": "BTC", "quantity": "1", "reason": "goodwill"},
    )

    # then
    assert (get_usd.status_code, post_usd.status_code, post_asset.status_code) == (403, 403, 403)
    assert CashTransaction.objects.count() == rows_before
    assert AssetTransaction.objects.count() == 0
    balance.refresh_from_db()
    assert balance.current_balance == Decimal("10000.00")


def test_support_does_not_see_adjustment_links(support_client, customer):
    page = support_client.get(reverse("admin:auth_user_change", args=[customer.pk]))
    assert "Adjust USD" not in page.content.decode()


def test_support_sees_no_password_button_it_may_not_use(support_client, customer):
    response = support_client.get(f"/admin/auth/user/{customer.pk}/change/")
    assert response.status_code == 200
    assert "Reset password" not in response.content.decode()
    assert support_client.get(f"/admin/auth/user/{customer.pk}/password/").status_code == 403


def test_a_superuser_still_resets_passwords(superuser_client, customer):
    response = superuser_client.get(f"/admin/auth/user/{customer.pk}/change/")
    assert "Reset password" in response.content.decode()


# --- Operations -------------------------------------------------------------------------


def test_operations_can_add_and_edit_assets(operations_client, btc):
    # when
    add = operations_client.post(
        reverse("admin:assets_asset_add"),
        {
            "asset_id": "DOGE",
            "name": "Dogecoin",
            "is_active": "on",
            "quantity_decimals": 2,
            "reference_price": "0.1",
            "daily_volatility": "0.06",
        },
    )
    change = operations_client.post(
        reverse("admin:assets_asset_change", args=["BTC"]),
        {
            "name": "Bitcoin",
            "quantity_decimals": 8,
            "coingecko_id": "bitcoin",
            "reference_price": "60000",
            "daily_volatility": "0.03",
        },
    )

    # then
    assert (add.status_code, change.status_code) == (302, 302)
    assert Asset.objects.get(pk="DOGE").reference_price == Decimal("0.1")
    btc.refresh_from_db()
    assert (btc.is_active, btc.reference_price, btc.daily_volatility) == (False, Decimal("60000"), Decimal("0.03"))


def test_operations_can_open_the_adjustment_forms(operations_client, customer):
    balance = UsdBalance.objects.get(user=customer)
    for name in ("admin:balances_usdbalance_adjust_usd", "admin:balances_usdbalance_adjust_asset"):
        assert operations_client.get(reverse(name, args=[balance.pk])).status_code == 200
    page = operations_client.get(reverse("admin:auth_user_change", args=[customer.pk]))
    assert reverse("admin:balances_usdbalance_adjust_usd", args=[balance.pk]) in page.content.decode()


def test_staff_without_a_group_sees_nothing(make_staff, client_for, resting_buy):
    client = client_for(make_staff("nobody"))
    assert client.get(reverse("admin:orders_order_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_user_change", args=[resting_buy.user_id])).status_code == 403


def test_adjustment_of_an_unknown_balance_is_404(operations_client):
    assert operations_client.get(reverse("admin:balances_usdbalance_adjust_usd", args=["999999"])).status_code == 404
    assert operations_client.get(reverse("admin:balances_usdbalance_adjust_usd", args=["abc"])).status_code == 404


# --- Nobody edits ledgers, balances or orders ---------------------------------------------


@pytest.fixture
def ledger_rows(completed_buy):
    return {
        CashTransaction: CashTransaction.objects.filter(order=completed_buy).get(),
        AssetTransaction: AssetTransaction.objects.filter(order=completed_buy).get(),
        UsdBalance: UsdBalance.objects.get(user=completed_buy.user),
        AssetBalance: AssetBalance.objects.get(user=completed_buy.user),
        Order: completed_buy,
    }


@pytest.mark.parametrize("who", ["support_user", "operations_user", "superuser"])
@pytest.mark.parametrize("model", [CashTransaction, AssetTransaction, UsdBalance, AssetBalance, Order])
def test_nobody_adds_changes_or_deletes_ledger_balance_or_order_rows(request, client_for, ledger_rows, who, model):
    # given
    user = request.getfixturevalue(who)
    client = client_for(user)
    row = ledger_rows[model]
    info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    model_admin = admin.site._registry[model]
    http_request = _request_as(user)

    # when
    view = client.get(reverse(f"{info}_change", args=[row.pk]))
    add = client.get(reverse(f"{info}_add"))
    change = client.post(reverse(f"{info}_change", args=[row.pk]), {"note": "edited"})
    delete = client.post(reverse(f"{info}_delete", args=[row.pk]), {"post": "yes"})
    bulk_delete = client.post(
        reverse(f"{info}_changelist"), {"action": "delete_selected", "_selected_action": [row.pk]}
    )

    # then
    assert view.status_code == 200  # read-only page
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert bulk_delete.status_code in (200, 302)  # the list again: delete_selected is not an action here
    assert "delete_selected" not in admin.site._registry[model].get_actions(http_request)
    assert model.objects.filter(pk=row.pk).exists()
    assert model_admin.has_add_permission(http_request) is False
    assert model_admin.has_change_permission(http_request, row) is False
    assert model_admin.has_delete_permission(http_request, row) is False
    assert model_admin.has_view_permission(http_request, row) is True
