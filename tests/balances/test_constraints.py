"""Every invariant the database can hold is a constraint (docs/DESIGN.md, "Money and precision"), and each one
really rejects a violating row: the last line of defence if a service ever gets it wrong.

Each violation runs in its own ``transaction.atomic()`` so that the test's transaction
survives the error; the constraint's name is checked, so a test cannot pass on the wrong
rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from assets.models import Asset
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from orders.models import Order


def violated_constraint(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.__cause__.diag.constraint_name


def rejects(excinfo: pytest.ExceptionInfo, *names: str) -> None:
    assert violated_constraint(excinfo) in names


@pytest.fixture
def holding(user, btc):
    return AssetBalance.objects.create(user=user, asset=btc, quantity=Decimal("2"), held_quantity=Decimal("1"))


# --- UsdBalance -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        # A negative balance also breaks held <= balance; PostgreSQL reports either first.
        (
            {"current_balance": Decimal("-0.01"), "held": Decimal("0")},
            ("usd_balance_not_negative", "usd_held_within_balance"),
        ),
        ({"held": Decimal("-0.01")}, ("usd_held_not_negative",)),
        ({"current_balance": Decimal("100.00"), "held": Decimal("100.01")}, ("usd_held_within_balance",)),
    ],
)
def test_usd_balance_rejects_a_row_breaking_its_rule(user, fields, constraint):
    # given
    balance = UsdBalance.objects.get(user=user)

    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        UsdBalance.objects.filter(pk=balance.pk).update(**fields)
    rejects(excinfo, *constraint)
    balance.refresh_from_db()
    assert (balance.current_balance, balance.held) == (Decimal("10000.00"), Decimal("0.00"))


@pytest.mark.django_db
def test_usd_balance_held_equal_to_balance_is_allowed(user):
    # given
    balance = UsdBalance.objects.get(user=user)

    # when
    UsdBalance.objects.filter(pk=balance.pk).update(held=balance.current_balance)

    # then
    balance.refresh_from_db()
    assert balance.available == Decimal("0.00")


@pytest.mark.django_db
def test_a_user_has_only_one_usd_balance(user):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        UsdBalance.objects.create(user=user, current_balance=Decimal("5"))
    assert excinfo.value.__cause__.sqlstate == "23505"  # unique_violation
    assert UsdBalance.objects.filter(user=user).count() == 1


# --- AssetBalance ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        # A negative quantity also breaks held <= quantity; PostgreSQL reports either first.
        (
            {"quantity": Decimal("-0.000000000000000001"), "held_quantity": 0},
            ("asset_quantity_not_negative", "asset_held_within_quantity"),
        ),
        ({"held_quantity": Decimal("-1")}, ("asset_held_not_negative",)),
        ({"held_quantity": Decimal("2.000000000000000001")}, ("asset_held_within_quantity",)),
        ({"average_purchase_price": Decimal("-0.000000000001")}, ("asset_average_price_not_negative",)),
        ({"total_bought": Decimal("-1")}, ("asset_totals_not_negative",)),
        ({"total_sold": Decimal("-1")}, ("asset_totals_not_negative",)),
    ],
)
def test_asset_balance_rejects_a_row_breaking_its_rule(holding, fields, constraint):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        AssetBalance.objects.filter(pk=holding.pk).update(**fields)
    rejects(excinfo, *constraint)
    holding.refresh_from_db()
    assert (holding.quantity, holding.held_quantity) == (Decimal("2"), Decimal("1"))


@pytest.mark.django_db
def test_a_user_has_only_one_balance_per_asset(holding, user, btc, eth):
    # given: another asset is fine
    AssetBalance.objects.create(user=user, asset=eth)

    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        AssetBalance.objects.create(user=user, asset=btc)
    rejects(excinfo, "asset_balance_one_per_user_and_asset")
    assert AssetBalance.objects.filter(user=user).count() == 2


# --- Idempotency keys -----------------------------------------------------------------


def make_order(user, asset, **fields) -> Order:
    defaults = {"order_type": Order.Type.BUY, "quantity": Decimal("1"), "status": Order.Status.FAILED}
    defaults.update(fields)
    return Order.objects.create(user=user, asset=asset, **defaults)


@pytest.mark.django_db
def test_client_order_id_is_unique_per_user_only_when_given(user, other_user, btc):
    # given: any number of orders without a key, and the same key for another user
    make_order(user, btc)
    make_order(user, btc)
    make_order(user, btc, client_order_id="abc")
    make_order(other_user, btc, client_order_id="abc")

    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        make_order(user, btc, client_order_id="abc")
    rejects(excinfo, "order_client_order_id_unique_per_user")
    assert Order.objects.filter(user=user).count() == 3


def make_deposit(user, **fields) -> CashTransaction:
    defaults = {"transaction_type": "DEPOSIT", "amount": Decimal("1"), "balance_after": Decimal("1")}
    defaults.update(fields)
    return CashTransaction.objects.create(user=user, **defaults)


@pytest.mark.django_db
def test_client_reference_is_unique_per_user_only_when_given(user, other_user):
    # given
    make_deposit(user)
    make_deposit(user)
    make_deposit(user, client_reference="ref-1")
    make_deposit(other_user, client_reference="ref-1")

    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        make_deposit(user, client_reference="ref-1")
    rejects(excinfo, "cash_tx_client_reference_unique_per_user")
    assert CashTransaction.objects.filter(user=user).count() == 4  # with the initial deposit


@pytest.mark.django_db
def test_asset_transaction_client_reference_is_unique_per_user_only_when_given(user, other_user, btc):
    # given
    def adjustment(owner, **fields):
        return AssetTransaction.objects.create(
            user=owner, asset=btc, transaction_type="ADJUSTMENT", quantity=Decimal("1"), **fields
        )

    adjustment(user)
    adjustment(user)
    adjustment(user, client_reference="admin-1")
    adjustment(other_user, client_reference="admin-1")

    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        adjustment(user, client_reference="admin-1")
    rejects(excinfo, "asset_tx_client_reference_unique_per_user")
    assert AssetTransaction.objects.filter(user=user).count() == 3


# --- Append-only ledgers ---------------------------------------------------------------


def _ledger_rows(user, btc):
    cash = CashTransaction.objects.get(user=user)  # the opening deposit
    asset = AssetTransaction.objects.create(user=user, asset=btc, transaction_type="ADJUSTMENT", quantity=Decimal("1"))
    return {"cash": (CashTransaction, cash), "asset": (AssetTransaction, asset)}


@pytest.mark.django_db
@pytest.mark.parametrize("ledger", ["cash", "asset"])
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda model, row: model.objects.filter(pk=row.pk).update(note="rewritten"), id="update"),
        pytest.param(lambda model, row: row.save(), id="save"),
        pytest.param(lambda model, row: model.objects.filter(pk=row.pk).delete(), id="delete"),
        pytest.param(lambda model, row: model.objects.all().delete(), id="delete-all"),
    ],
)
def test_ledger_rows_cannot_be_changed_or_deleted(user, btc, ledger, change):
    # given
    model, row = _ledger_rows(user, btc)[ledger]

    # when / then
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        change(model, row)
    assert model.objects.filter(pk=row.pk, note=row.note).exists()


@pytest.mark.django_db
def test_the_append_only_trigger_cannot_be_bypassed_with_raw_sql(user, btc):
    # given
    _ledger_rows(user, btc)

    # when / then
    for table in ("balances_cashtransaction", "balances_assettransaction"):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET created_at = created_at WHERE user_id = %s", [user.pk])


# --- Orders ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"quantity": Decimal("0")}, "order_quantity_positive"),
        ({"quantity": Decimal("-1")}, "order_quantity_positive"),
        ({"order_price": Decimal("0")}, "order_price_positive"),
        ({"order_price": Decimal("-50000")}, "order_price_positive"),
    ],
)
def test_order_rejects_a_non_positive_quantity_or_price(user, btc, fields, constraint):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        make_order(user, btc, **fields)
    rejects(excinfo, constraint)
    assert Order.objects.count() == 0


# --- Ledgers --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transaction_type", "amount"),
    [
        ("DEPOSIT", Decimal("-1.00")),
        ("DEPOSIT", Decimal("0")),
        ("SELL", Decimal("-1.00")),
        ("WITHDRAWAL", Decimal("1.00")),
        ("BUY", Decimal("1.00")),
        ("BUY", Decimal("0")),
        ("ADJUSTMENT", Decimal("0")),
    ],
)
def test_cash_transaction_sign_must_match_its_type(user, transaction_type, amount):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        make_deposit(user, transaction_type=transaction_type, amount=amount)
    rejects(excinfo, "cash_tx_amount_sign_matches_type")
    assert CashTransaction.objects.filter(user=user).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transaction_type", "amount"),
    [
        ("DEPOSIT", Decimal("1.00")),
        ("SELL", Decimal("1.00")),
        ("WITHDRAWAL", Decimal("-1.00")),
        ("BUY", Decimal("-1.00")),
        ("ADJUSTMENT", Decimal("1.00")),
        ("ADJUSTMENT", Decimal("-1.00")),
        # a reset sets the balance: its row is the difference, whichever way, 0 included
        ("RESET", Decimal("1.00")),
        ("RESET", Decimal("-1.00")),
        ("RESET", Decimal("0")),
    ],
)
def test_cash_transaction_with_the_right_sign_is_accepted(user, transaction_type, amount):
    # when
    make_deposit(user, transaction_type=transaction_type, amount=amount)

    # then
    assert CashTransaction.objects.filter(user=user, transaction_type=transaction_type, amount=amount).exists()


@pytest.mark.django_db
def test_cash_transaction_balance_after_is_never_negative(user):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        make_deposit(user, transaction_type="ADJUSTMENT", amount=Decimal("-1"), balance_after=Decimal("-1"))
    rejects(excinfo, "cash_tx_balance_after_not_negative")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("transaction_type", "quantity"),
    [
        ("BUY", Decimal("0")),
        ("BUY", Decimal("-1")),
        ("SELL", Decimal("0")),
        ("SELL", Decimal("-0.000000000000000001")),
        ("ADJUSTMENT", Decimal("0")),
        # a reset only takes a holding out
        ("RESET", Decimal("0")),
        ("RESET", Decimal("0.000000000000000001")),
    ],
)
def test_asset_transaction_quantity_must_be_positive(user, btc, transaction_type, quantity):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        AssetTransaction.objects.create(user=user, asset=btc, transaction_type=transaction_type, quantity=quantity)
    rejects(excinfo, "asset_tx_quantity_positive")
    assert AssetTransaction.objects.count() == 0


@pytest.mark.django_db
def test_a_reset_asset_row_takes_quantity_out(user, btc):
    AssetTransaction.objects.create(user=user, asset=btc, transaction_type="RESET", quantity=Decimal("-0.5"))
    assert AssetTransaction.objects.get().quantity == Decimal("-0.5")


@pytest.mark.django_db
def test_a_reset_record_never_holds_negative_cash_nor_one_client_reference_twice(user):
    from django.utils import timezone

    from balances.models import AccountReset

    def record(cash: str, reference: str | None) -> AccountReset:
        row = make_deposit(user, transaction_type="RESET", amount=Decimal("0"))
        return AccountReset.objects.create(
            user=user, created_at=timezone.now(), cash=Decimal(cash), cash_transaction=row, client_reference=reference
        )

    record("1.00", "k")
    with pytest.raises(IntegrityError) as negative, transaction.atomic():
        record("-0.01", None)
    rejects(negative, "account_reset_cash_not_negative")
    with pytest.raises(IntegrityError) as twice, transaction.atomic():
        record("2.00", "k")
    rejects(twice, "account_reset_client_reference_unique_per_user")
    record("3.00", None)
    record("4.00", None)  # without a key, any number
    assert AccountReset.objects.count() == 3


@pytest.mark.django_db
def test_asset_transaction_price_must_be_positive(user, btc):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        AssetTransaction.objects.create(
            user=user, asset=btc, transaction_type="BUY", quantity=Decimal("1"), price_per_unit=Decimal("0")
        )
    rejects(excinfo, "asset_tx_price_positive")


# --- Assets ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("asset_id", ["btc", "Eth", "BTC-USD", ""])
def test_asset_id_must_be_upper_case_letters_or_digits(asset_id):
    # when / then
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        Asset.objects.create(asset_id=asset_id, name="x", reference_price=Decimal("1"))
    rejects(excinfo, "asset_id_upper_case")
    assert Asset.objects.count() == 0
