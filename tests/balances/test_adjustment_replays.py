"""Staff adjustments with a client_reference (the admin form's one-time key): a repeat
replays the original row, a repeat with other values is a Conflict, and two submits racing
on their own connections write one row."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import adjust_asset_balance, adjust_usd_balance
from core.exceptions import Conflict
from orders.selectors import reconcile_ledger
from tests.support.threads import run_concurrently

D = Decimal


def adjustments(user) -> tuple[int, int]:
    return (
        CashTransaction.objects.filter(user=user, transaction_type="ADJUSTMENT").count(),
        AssetTransaction.objects.filter(user=user, transaction_type="ADJUSTMENT").count(),
    )


@pytest.mark.django_db
def test_a_repeated_usd_adjustment_key_returns_the_original_and_moves_nothing(user, staff_user):
    # given
    first = adjust_usd_balance(user=user, amount=D("7.50"), reason="goodwill", actor=staff_user, client_reference="k-1")

    # when
    again = adjust_usd_balance(user=user, amount=D("7.50"), reason="goodwill", actor=staff_user, client_reference="k-1")

    # then
    assert (first.created, again.created) == (True, False)
    assert again.transaction.pk == first.transaction.pk
    assert UsdBalance.objects.get(user=user).current_balance == D("10007.50")
    assert adjustments(user) == (1, 0)


@pytest.mark.django_db
def test_a_repeated_asset_adjustment_key_returns_the_original_and_moves_nothing(user, staff_user, btc):
    # given
    first = adjust_asset_balance(
        user=user, asset=btc, quantity=D("0.5"), reason="airdrop", actor=staff_user, client_reference="k-1"
    )

    # when
    again = adjust_asset_balance(
        user=user, asset=btc, quantity=D("0.5"), reason="airdrop", actor=staff_user, client_reference="k-1"
    )

    # then
    assert (first.created, again.created) == (True, False)
    assert again.transaction.pk == first.transaction.pk
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == D("0.5")
    assert adjustments(user) == (0, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("asset_id", "quantity"),
    [("BTC", "0.6"), ("ETH", "0.5"), ("BTC", "-0.5")],
)
def test_an_asset_adjustment_key_reused_for_other_values_is_a_conflict(user, staff_user, btc, eth, asset_id, quantity):
    # given
    adjust_asset_balance(
        user=user, asset=btc, quantity=D("0.5"), reason="airdrop", actor=staff_user, client_reference="k-1"
    )
    asset = {"BTC": btc, "ETH": eth}[asset_id]

    # when / then
    with pytest.raises(Conflict):
        adjust_asset_balance(
            user=user, asset=asset, quantity=D(quantity), reason="other", actor=staff_user, client_reference="k-1"
        )
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == D("0.5")
    assert not AssetBalance.objects.filter(user=user, asset=eth).exists()
    assert adjustments(user) == (0, 1)


@pytest.mark.django_db
def test_a_usd_adjustment_key_reused_for_another_amount_is_a_conflict(user, staff_user):
    # given
    adjust_usd_balance(user=user, amount=D("7.50"), reason="goodwill", actor=staff_user, client_reference="k-1")

    # when / then
    with pytest.raises(Conflict):
        adjust_usd_balance(user=user, amount=D("75.00"), reason="goodwill", actor=staff_user, client_reference="k-1")
    assert UsdBalance.objects.get(user=user).current_balance == D("10007.50")


@pytest.mark.django_db
def test_the_same_key_for_two_users_is_two_adjustments(user, other_user, staff_user, btc):
    # when
    for owner in (user, other_user):
        adjust_usd_balance(user=owner, amount=D("1.00"), reason="x", actor=staff_user, client_reference="k-1")
        adjust_asset_balance(
            user=owner, asset=btc, quantity=D("1"), reason="x", actor=staff_user, client_reference="k-1"
        )

    # then
    assert adjustments(user) == adjustments(other_user) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_one_form_submitted_eight_times_at_once_adjusts_once(make_user, btc):
    # given
    user, staff = make_user("dora"), make_user("olga", is_staff=True)

    def submit_usd():
        return adjust_usd_balance(user=user, amount=D("3.00"), reason="r", actor=staff, client_reference="usd-key")

    def submit_asset():
        return adjust_asset_balance(
            user=user, asset=btc, quantity=D("0.25"), reason="r", actor=staff, client_reference="asset-key"
        )

    # when
    results = run_concurrently(*[submit_usd] * 4, *[submit_asset] * 4)

    # then
    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.created for r in results) == [False] * 6 + [True] * 2
    assert UsdBalance.objects.get(user=user).current_balance == D("10003.00")
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == D("0.25")
    assert adjustments(user) == (1, 1)
    assert reconcile_ledger() == []
