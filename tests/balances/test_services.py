"""Cash movements and staff adjustments: exact arithmetic, one ledger row each, idempotent
replays, and a ledger that explains every balance afterwards (docs/DESIGN.md, "Ledgers" and "Lock order")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import adjust_asset_balance, adjust_usd_balance, deposit, withdraw
from core.exceptions import Conflict, InsufficientAsset, InsufficientFunds, InvalidRequest
from orders.models import Order
from orders.selectors import Mismatch, reconcile_ledger
from tests.support.balances import usd_balance_and_held

pytestmark = pytest.mark.django_db


def ledger(user) -> list[tuple]:
    return list(
        CashTransaction.objects.filter(user=user)
        .order_by("id")
        .values_list("transaction_type", "amount", "balance_after", "client_reference")
    )


INITIAL_ROW = ("DEPOSIT", Decimal("10000.00"), Decimal("10000.00"), None)


@pytest.fixture
def resting_buy_hold(user, btc):
    """A resting BUY limit order holding 4000.00 of alice's 10000.00, as place_order leaves it."""
    Order.objects.create(
        user=user,
        asset=btc,
        order_type=Order.Type.BUY,
        quantity=Decimal("0.1"),
        order_price=Decimal("40000"),
        held_amount=Decimal("4000.00"),
    )
    UsdBalance.objects.filter(user=user).update(held=Decimal("4000.00"))
    return Decimal("4000.00")


# --- deposit and withdraw -------------------------------------------------------------


def test_deposit_adds_the_amount_and_writes_one_ledger_row(user):
    # when
    movement = deposit(user=user, amount=Decimal("250.50"))

    # then
    assert movement.created is True
    assert movement.balance.current_balance == Decimal("10250.50")
    assert usd_balance_and_held(user) == (Decimal("10250.50"), Decimal("0.00"))
    assert ledger(user) == [INITIAL_ROW, ("DEPOSIT", Decimal("250.50"), Decimal("10250.50"), None)]
    assert movement.transaction.pk == CashTransaction.objects.filter(user=user).latest("id").pk
    assert reconcile_ledger() == []


def test_withdrawals_subtract_and_record_the_balance_after_each_one(user):
    # when
    withdraw(user=user, amount=Decimal("0.01"))
    withdraw(user=user, amount=Decimal("9999.98"))
    deposit(user=user, amount=Decimal("3.33"))

    # then
    assert usd_balance_and_held(user) == (Decimal("3.34"), Decimal("0.00"))
    assert ledger(user) == [
        INITIAL_ROW,
        ("WITHDRAWAL", Decimal("-0.01"), Decimal("9999.99"), None),
        ("WITHDRAWAL", Decimal("-9999.98"), Decimal("0.01"), None),
        ("DEPOSIT", Decimal("3.33"), Decimal("3.34"), None),
    ]
    assert reconcile_ledger() == []


def test_withdrawing_everything_available_leaves_exactly_zero(user):
    # when
    withdraw(user=user, amount=Decimal("10000.00"))

    # then
    assert usd_balance_and_held(user) == (Decimal("0.00"), Decimal("0.00"))
    assert reconcile_ledger() == []


def test_withdrawing_more_than_available_fails_and_moves_nothing(user, resting_buy_hold):
    # given: 10000.00 of which 4000.00 is held, so 6000.00 available

    # when / then
    with pytest.raises(InsufficientFunds) as excinfo:
        withdraw(user=user, amount=Decimal("6000.01"))
    assert excinfo.value.details == {"available": "6000.00", "requested": "6000.01"}
    assert usd_balance_and_held(user) == (Decimal("10000.00"), Decimal("4000.00"))
    assert ledger(user) == [INITIAL_ROW]
    assert reconcile_ledger() == []


def test_withdrawing_exactly_the_available_amount_keeps_the_hold(user, resting_buy_hold):
    # when
    withdraw(user=user, amount=Decimal("6000.00"))

    # then
    assert usd_balance_and_held(user) == (Decimal("4000.00"), Decimal("4000.00"))
    assert reconcile_ledger() == []


def adjust_by(*, user, amount):
    return adjust_usd_balance(user=user, amount=amount, reason="test", actor=user)


@pytest.mark.parametrize(
    ("service", "amount"),
    [
        # not positive (an adjustment may take money away, so it is not asked)
        *[(service, amount) for service in (deposit, withdraw) for amount in ("0", "-0.01", "-100")],
        # a fraction of a cent
        *[(service, amount) for service in (deposit, withdraw, adjust_by) for amount in ("0.005", "0.004", "1.001")],
    ],
)
def test_an_amount_that_is_not_positive_or_has_a_fraction_of_a_cent_is_rejected_and_moves_nothing(
    user, service, amount
):
    # when / then
    with pytest.raises(InvalidRequest):
        service(user=user, amount=Decimal(amount))
    assert usd_balance_and_held(user) == (Decimal("10000.00"), Decimal("0.00"))
    assert ledger(user) == [INITIAL_ROW]
    assert reconcile_ledger() == []


# --- idempotent replays ---------------------------------------------------------------


def test_repeating_a_deposit_with_its_client_reference_returns_the_original(user):
    # given
    first = deposit(user=user, amount=Decimal("100.00"), client_reference="dep-1")

    # when
    again = deposit(user=user, amount=Decimal("100.00"), client_reference="dep-1")

    # then
    assert (first.created, again.created) == (True, False)
    assert again.transaction.pk == first.transaction.pk
    assert usd_balance_and_held(user) == (Decimal("10100.00"), Decimal("0.00"))
    assert ledger(user) == [INITIAL_ROW, ("DEPOSIT", Decimal("100.00"), Decimal("10100.00"), "dep-1")]


def test_repeating_a_withdrawal_replays_it_even_when_it_could_not_be_paid_again(user):
    # given
    withdraw(user=user, amount=Decimal("10000.00"), client_reference="wd-1")

    # when
    again = withdraw(user=user, amount=Decimal("10000.00"), client_reference="wd-1")

    # then
    assert again.created is False
    assert usd_balance_and_held(user) == (Decimal("0.00"), Decimal("0.00"))
    assert CashTransaction.objects.filter(user=user).count() == 2


@pytest.mark.parametrize(
    ("service", "amount"),
    [(deposit, "100.01"), (withdraw, "100.00")],
    ids=["different_amount", "different_type"],
)
def test_reusing_a_client_reference_for_another_movement_is_a_conflict(user, service, amount):
    # given
    deposit(user=user, amount=Decimal("100.00"), client_reference="dep-1")

    # when / then
    with pytest.raises(Conflict):
        service(user=user, amount=Decimal(amount), client_reference="dep-1")
    assert usd_balance_and_held(user) == (Decimal("10100.00"), Decimal("0.00"))
    assert CashTransaction.objects.filter(user=user).count() == 2


def test_client_references_belong_to_one_user(user, other_user):
    # given
    deposit(user=user, amount=Decimal("100.00"), client_reference="dep-1")

    # when
    movement = deposit(user=other_user, amount=Decimal("5.00"), client_reference="dep-1")

    # then
    assert movement.created is True
    assert usd_balance_and_held(other_user) == (Decimal("10005.00"), Decimal("0.00"))


# --- staff adjustments ----------------------------------------------------------------


def test_an_adjustment_records_its_reason_and_the_staff_user(user, staff_user):
    # when
    movement = adjust_usd_balance(user=user, amount=Decimal("-12.34"), reason="  Refund reversal  ", actor=staff_user)

    # then
    row = movement.transaction
    assert (row.transaction_type, row.amount, row.balance_after) == (
        "ADJUSTMENT",
        Decimal("-12.34"),
        Decimal("9987.66"),
    )
    assert (row.note, row.actor_id) == ("Refund reversal", staff_user.pk)
    assert usd_balance_and_held(user) == (Decimal("9987.66"), Decimal("0.00"))
    assert reconcile_ledger() == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_adjustment_without_a_reason_is_rejected(user, staff_user, reason):
    # when / then
    with pytest.raises(InvalidRequest):
        adjust_usd_balance(user=user, amount=Decimal("5"), reason=reason, actor=staff_user)
    assert ledger(user) == [INITIAL_ROW]


def test_a_zero_adjustment_is_rejected(user, staff_user):
    # when / then
    with pytest.raises(InvalidRequest):
        adjust_usd_balance(user=user, amount=Decimal("0"), reason="nothing", actor=staff_user)
    assert ledger(user) == [INITIAL_ROW]


def test_a_negative_adjustment_cannot_take_more_than_available(user, staff_user, resting_buy_hold):
    # when / then
    with pytest.raises(InsufficientFunds):
        adjust_usd_balance(user=user, amount=Decimal("-6000.01"), reason="chargeback", actor=staff_user)
    assert usd_balance_and_held(user) == (Decimal("10000.00"), Decimal("4000.00"))
    assert ledger(user) == [INITIAL_ROW]
    assert reconcile_ledger() == []


def test_an_asset_adjustment_adds_and_removes_quantity_with_a_ledger_row(user, staff_user, btc):
    # when
    adjust_asset_balance(user=user, asset=btc, quantity=Decimal("1.5"), reason="airdrop", actor=staff_user)
    adjust_asset_balance(user=user, asset=btc, quantity=Decimal("-0.25"), reason="correction", actor=staff_user)

    # then
    holding = AssetBalance.objects.get(user=user, asset=btc)
    assert (holding.quantity, holding.held_quantity, holding.average_purchase_price) == (
        Decimal("1.25"),
        Decimal("0"),
        Decimal("0"),
    )
    rows = list(
        AssetTransaction.objects.filter(user=user).order_by("id").values_list("transaction_type", "quantity", "actor")
    )
    assert rows == [("ADJUSTMENT", Decimal("1.5"), staff_user.pk), ("ADJUSTMENT", Decimal("-0.25"), staff_user.pk)]
    assert reconcile_ledger() == []


def test_an_asset_adjustment_cannot_take_more_than_the_unheld_quantity(user, staff_user, btc):
    # given
    adjust_asset_balance(user=user, asset=btc, quantity=Decimal("1"), reason="airdrop", actor=staff_user)

    # when / then
    with pytest.raises(InsufficientAsset):
        adjust_asset_balance(
            user=user, asset=btc, quantity=Decimal("-1.000000000000000001"), reason="x", actor=staff_user
        )
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == Decimal("1")
    assert AssetTransaction.objects.filter(user=user).count() == 1


def test_an_asset_adjustment_of_an_asset_never_held_cannot_be_negative(user, staff_user, btc):
    # when / then
    with pytest.raises(InsufficientAsset):
        adjust_asset_balance(user=user, asset=btc, quantity=Decimal("-1"), reason="x", actor=staff_user)
    assert AssetBalance.objects.filter(user=user).count() == 0
    assert AssetTransaction.objects.filter(user=user).count() == 0


# --- reconciliation -------------------------------------------------------------------


def test_reconciliation_finds_a_balance_its_ledger_does_not_explain(user, other_user):
    # given
    deposit(user=user, amount=Decimal("1.00"))
    UsdBalance.objects.filter(user=user).update(current_balance=Decimal("10001.01"))

    # when
    mismatches = reconcile_ledger()

    # then
    assert mismatches == [Mismatch("alice", "USD balance", Decimal("10001.01"), Decimal("10001.00"))]


def test_reconciliation_finds_a_hold_no_open_order_explains(user, resting_buy_hold):
    # given
    Order.objects.filter(user=user).update(status=Order.Status.CANCELLED)

    # when
    mismatches = reconcile_ledger()

    # then
    assert mismatches == [Mismatch("alice", "USD held", Decimal("4000.00"), Decimal("0"))]


def test_reconciliation_finds_an_asset_quantity_and_hold_the_ledger_does_not_explain(user, staff_user, btc, eth):
    # given
    adjust_asset_balance(user=user, asset=btc, quantity=Decimal("2"), reason="airdrop", actor=staff_user)
    adjust_asset_balance(user=user, asset=eth, quantity=Decimal("3"), reason="airdrop", actor=staff_user)
    assert reconcile_ledger() == []
    AssetBalance.objects.filter(user=user, asset=btc).update(quantity=Decimal("2.000000000000000001"))
    AssetBalance.objects.filter(user=user, asset=eth).update(held_quantity=Decimal("1"))

    # when
    mismatches = reconcile_ledger()

    # then
    assert sorted(mismatches, key=str) == [
        Mismatch("alice", "BTC quantity", Decimal("2.000000000000000001"), Decimal("2")),
        Mismatch("alice", "ETH held", Decimal("1"), Decimal("0")),
    ]


def test_the_holding_rows_are_named_like_the_columns_of_their_models():
    # The holdings read selects each row field by its name: a renamed column must fail here.
    from assets.models import Asset
    from balances.models import AssetBalance
    from balances.selectors import HeldAsset, Holding

    asset_columns = {f.column for f in Asset._meta.concrete_fields}
    holding_columns = {f.column for f in AssetBalance._meta.concrete_fields}
    assert set(HeldAsset.__dataclass_fields__) <= asset_columns
    assert set(Holding.__dataclass_fields__) - {"asset"} <= holding_columns
