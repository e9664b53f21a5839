"""Operations reset a user's paper account from the user's page in the back office; Support
sees the resets and cannot make one (docs/DESIGN.md, "Reset and exports", "Permissions")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from balances.forms import new_submission_key
from balances.models import AccountReset, AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order, reset_account
from orders.validation import OrderRequest


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _reset_url(user) -> str:
    return reverse("admin:auth_user_reset_account", args=[user.pk])


def _user_page(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def money_of(user) -> tuple:
    usd = UsdBalance.objects.get(user=user)
    return (
        usd.current_balance,
        usd.held,
        sorted(AssetBalance.objects.filter(user=user).values_list("asset_id", "quantity", "held_quantity")),
        CashTransaction.objects.filter(user=user).count(),
        AssetTransaction.objects.filter(user=user).count(),
        sorted(Order.objects.filter(user=user).values_list("order_id", "status")),
    )


@pytest.fixture
def trading_customer(customer, btc, set_price, resting_buy):
    """carol with 0.02 BTC bought at 50,000 and her resting BUY holding 10.00: 8,990.00 USD."""
    set_price("BTC", "50000")
    place_order(user=customer, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.02")))
    return customer


def test_operations_reset_an_account_with_a_reason_and_are_recorded_as_its_actor(
    operations_client, operations_user, trading_customer, resting_buy
):
    # given the form as the page shows it: the initial balance, and a one-time key
    page = operations_client.get(_reset_url(trading_customer))
    form = page.context["form"]
    assert (page.status_code, form["cash"].value()) == (200, Decimal("10000.00"))
    assert 'id="open-orders">1<' in page.text

    # when
    response = operations_client.post(
        _reset_url(trading_customer),
        {"cash": "750.00", "reason": " Contest restart, ticket 77 ", "submission_key": form["submission_key"].value()},
    )

    # then back to the user's page, the account reset with the staff member and the reason
    assert (response.status_code, response.url) == (302, _user_page(trading_customer))
    assert _messages(response) == [
        "Reset carol's account to 750.00 USD. Open orders cancelled: 1; holdings taken out: 1."
    ]
    reset = AccountReset.objects.get(user=trading_customer)
    assert (reset.cash, reset.actor, reset.reason, reset.client_reference) == (
        Decimal("750.00"),
        operations_user,
        "Contest restart, ticket 77",
        form["submission_key"].value(),
    )
    usd = UsdBalance.objects.get(user=trading_customer)
    assert (usd.current_balance, usd.held) == (Decimal("750.00"), Decimal("0.00"))
    assert AssetBalance.objects.get(user=trading_customer).quantity == Decimal("0")
    resting_buy.refresh_from_db()
    assert (resting_buy.status, resting_buy.actor) == (Order.Status.CANCELLED, operations_user)
    assert reconcile_ledger() == []


def test_submitting_one_reset_form_twice_resets_once(operations_client, trading_customer):
    # given the same form posted twice
    data = {"cash": "100.00", "reason": "restart", "submission_key": new_submission_key()}

    # when
    first = operations_client.post(_reset_url(trading_customer), data)
    place_order(
        user=trading_customer, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.001"))
    )  # 50.00
    again = operations_client.post(_reset_url(trading_customer), data)

    # then one reset, and what happened after it stays
    assert first.status_code == again.status_code == 302
    assert AccountReset.objects.count() == 1
    assert UsdBalance.objects.get(user=trading_customer).current_balance == Decimal("50.00")
    assert "already submitted" in _messages(again)[-1]
    assert reconcile_ledger() == []


def test_a_used_reset_form_resent_with_another_amount_changes_nothing_and_offers_a_new_form(
    operations_client, trading_customer
):
    # given an applied reset
    key = new_submission_key()
    operations_client.post(_reset_url(trading_customer), {"cash": "100.00", "reason": "r", "submission_key": key})
    rows = list(CashTransaction.objects.values_list("id", flat=True))

    # when the old form comes back with another amount
    response = operations_client.post(
        _reset_url(trading_customer), {"cash": "900.00", "reason": "r", "submission_key": key}
    )

    # then
    assert (response.status_code, response.url) == (302, _reset_url(trading_customer))
    assert "already used for a reset to another amount" in _messages(response)[-1]
    assert list(CashTransaction.objects.values_list("id", flat=True)) == rows
    assert UsdBalance.objects.get(user=trading_customer).current_balance == Decimal("100.00")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cash": "100.00", "reason": "  "}, "reason"),
        ({"cash": "-1.00", "reason": "r"}, "cash"),
        ({"cash": "1.001", "reason": "r"}, "cash"),
        ({"cash": "1000000000.01", "reason": "r"}, "cash"),
        ({"cash": "lots", "reason": "r"}, "cash"),
        ({"cash": "", "reason": "r"}, "cash"),
    ],
)
def test_a_reset_form_without_a_reason_or_with_a_bad_amount_is_shown_again_and_moves_nothing(
    operations_client, trading_customer, data, field
):
    before = money_of(trading_customer)
    response = operations_client.post(_reset_url(trading_customer), {**data, "submission_key": new_submission_key()})
    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert money_of(trading_customer) == before
    assert AccountReset.objects.count() == 0


def test_a_reset_form_without_its_one_time_key_is_refused(operations_client, trading_customer):
    response = operations_client.post(_reset_url(trading_customer), {"cash": "1.00", "reason": "r"})
    assert (response.status_code, list(response.context["form"].errors)) == (200, ["submission_key"])
    assert AccountReset.objects.count() == 0


def test_support_cannot_reset_and_is_not_offered_to(support_client, trading_customer):
    # given
    before = money_of(trading_customer)

    # when
    user_page = support_client.get(_user_page(trading_customer))
    form = support_client.get(_reset_url(trading_customer))
    post = support_client.post(
        _reset_url(trading_customer), {"cash": "1.00", "reason": "r", "submission_key": new_submission_key()}
    )

    # then
    assert user_page.status_code == 200
    assert _reset_url(trading_customer) not in user_page.text
    assert (form.status_code, post.status_code) == (403, 403)
    assert money_of(trading_customer) == before


def test_operations_see_the_reset_link_on_the_users_page(operations_client, trading_customer):
    page = operations_client.get(_user_page(trading_customer))
    assert f'<a href="{_reset_url(trading_customer)}">Reset account</a>' in page.text


def test_an_unknown_or_malformed_user_is_404(operations_client, db):
    assert operations_client.get(reverse("admin:auth_user_reset_account", args=[999999])).status_code == 404
    assert operations_client.get("/admin/auth/user/not-a-number/reset-account/").status_code == 404


def test_the_users_page_lists_the_resets_and_the_ledgers_show_their_rows(
    support_client, operations_user, trading_customer
):
    # given a reset by the back office and one by the user
    reset_account(user=trading_customer, cash=Decimal("500.00"), actor=operations_user, reason="ticket 5")
    reset_account(user=trading_customer, cash=Decimal("600.00"))

    # when Support looks
    page = support_client.get(_user_page(trading_customer)).text
    resets = support_client.get(reverse("admin:balances_accountreset_changelist"))
    cash = support_client.get(reverse("admin:balances_cashtransaction_changelist"), {"transaction_type": "RESET"})
    assets = support_client.get(reverse("admin:balances_assettransaction_changelist"), {"transaction_type": "RESET"})

    # then
    assert 'id="account-resets"' in page
    assert "ticket 5" in page
    assert "olga_ops" in page
    assert resets.status_code == 200
    assert [row.cash for row in resets.context["cl"].result_list] == [Decimal("600.00"), Decimal("500.00")]
    assert [row.amount for row in cash.context["cl"].result_list] == [Decimal("100.00"), Decimal("-8500.00")]
    assert [(row.asset_id, row.quantity) for row in assets.context["cl"].result_list] == [("BTC", Decimal("-0.02"))]
    assert AssetTransaction.objects.filter(transaction_type="RESET").count() == 1


def test_nobody_changes_or_deletes_a_reset_in_the_admin(superuser_client, trading_customer):
    reset = reset_account(user=trading_customer).reset
    change = superuser_client.post(reverse("admin:balances_accountreset_change", args=[reset.pk]), {"cash": "1"})
    delete = superuser_client.post(reverse("admin:balances_accountreset_delete", args=[reset.pk]), {"post": "yes"})
    assert (change.status_code, delete.status_code) == (403, 403)
    assert AccountReset.objects.get().cash == Decimal("10000.00")
