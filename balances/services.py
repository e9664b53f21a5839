"""Writes to balances and their ledgers.

Every function that changes money takes the user lock first (``lock_objects``; docs/DESIGN.md,
"Lock order") and writes the ledger row in the same transaction as the balance it explains
(a fill's are written by its settlement statement, ``orders.settlement``). Functions named
``*_locked`` run inside a caller's transaction that already holds the locks; the others
own their transaction (``atomic(durable=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.services import issue_token
from assets.models import Asset
from balances.lock_objects import asset_balance_for_update, usd_balance_for_update
from balances.models import AccountReset, AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from core.exceptions import BalanceLimitExceeded, Conflict, InsufficientAsset, InsufficientFunds, InvalidRequest
from core.money import EXACT, USD, ZERO, decimal_places, plain
from core.sql import violated_constraint

User = get_user_model()


# --- Opening accounts ---------------------------------------------------------------


def open_usd_balance(*, user: AbstractBaseUser) -> UsdBalance:
    """Create the user's USD balance, funded with ``INITIAL_USD_BALANCE`` by a DEPOSIT row."""
    initial = settings.INITIAL_USD_BALANCE
    with transaction.atomic(savepoint=False):
        balance = UsdBalance.objects.create(user=user, current_balance=initial)
        if initial > 0:
            CashTransaction.objects.create(
                user=user,
                transaction_type=CashTransaction.Type.DEPOSIT,
                amount=initial,
                balance_after=initial,
                note="Initial balance",
            )
    return balance


def open_usd_balance_for_new_user(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """post_save receiver for the user model (see ``BalancesConfig.ready`` for why)."""
    if created and not raw:
        open_usd_balance(user=instance)


# Both unique indexes on auth_user's name: Django's (case-sensitive) and
# accounts/migrations/0003's on lower(username).
USERNAME_INDEXES = ("auth_user_username_key", "auth_user_username_lower_uniq")


def register_user(*, username: str, password: str, email: str = "") -> tuple[AbstractBaseUser, Token]:
    """Create a user with a funded USD balance and an API token, all in one transaction.

    Usernames are unique in any case, and only the unique index on ``lower(username)`` can
    say so for two registrations at once ("Alice" and "alice"): no check before the insert.
    Raises InvalidRequest for a taken name, with the body a serializer's error on
    ``username`` has.
    """
    try:
        with transaction.atomic(durable=True):
            user = User.objects.create_user(username=username, password=password, email=email)
            token = issue_token(user=user)
    except IntegrityError as error:
        if violated_constraint(error) not in USERNAME_INDEXES:
            raise
        raise InvalidRequest("The request is not valid.", details={"username": ["This username is taken."]}) from None
    return user, token


# --- Cash movements -----------------------------------------------------------------


@dataclass(frozen=True)
class CashMovement:
    transaction: CashTransaction
    balance: UsdBalance
    created: bool  # False when an idempotent replay returned the original row


def _replay_or_conflict(*, user_id: int, client_reference: str, transaction_type: str, amount: Decimal):
    existing = CashTransaction.objects.filter(user_id=user_id, client_reference=client_reference).first()
    if existing is None:
        return None
    if existing.transaction_type != transaction_type or existing.amount != amount:
        raise Conflict(
            "client_reference was already used for a different movement.",
            details={"client_reference": client_reference},
        )
    return existing


def _move_cash(
    *,
    user: AbstractBaseUser,
    transaction_type: str,
    amount: Decimal,
    client_reference: str | None = None,
    note: str = "",
    actor: AbstractBaseUser | None = None,
) -> CashMovement:
    if amount == 0:
        raise InvalidRequest("The amount must not be zero.", details={"amount": ["Must not be zero."]})
    # USD columns hold cents: PostgreSQL would round a sub-cent amount on its own, the
    # balance and its ledger row differently (withdrawing 0.005 stored -0.01 in the ledger
    # but left the balance at 10000.00), or store 0.00 and break the sign constraint.
    if decimal_places(amount) > USD.decimals:
        raise InvalidRequest(
            "USD amounts are in whole cents.", details={"amount": [f"At most {USD.decimals} decimal places."]}
        )
    with transaction.atomic(durable=True):
        balance = usd_balance_for_update(user_id=user.pk)
        if client_reference is not None:
            # Safe without a unique-violation retry: every cash row of this user is
            # written under the user lock we hold.
            existing = _replay_or_conflict(
                user_id=user.pk, client_reference=client_reference, transaction_type=transaction_type, amount=amount
            )
            if existing is not None:
                return CashMovement(existing, balance, created=False)
        if amount < 0 and balance.available < -amount:
            raise InsufficientFunds(
                "Not enough available USD.",
                details={"available": balance.available, "requested": -amount},
            )
        row = apply_cash_locked(
            balance=balance,
            transaction_type=transaction_type,
            amount=amount,
            client_reference=client_reference,
            note=note,
            actor=actor,
        )
    return CashMovement(row, balance, created=True)


def deposit(*, user: AbstractBaseUser, amount: Decimal, client_reference: str | None = None) -> CashMovement:
    """Add USD. Takes the user lock. Replays an earlier deposit with the same client_reference;
    raises Conflict if that reference was used for something else."""
    if amount <= 0:
        raise InvalidRequest("The amount must be positive.", details={"amount": ["Must be positive."]})
    if amount > settings.MAX_DEPOSIT:
        raise InvalidRequest(
            f"A deposit is at most {settings.MAX_DEPOSIT} USD.",
            details={"amount": [f"At most {settings.MAX_DEPOSIT} (MAX_DEPOSIT)."]},
        )
    return _move_cash(
        user=user, transaction_type=CashTransaction.Type.DEPOSIT, amount=amount, client_reference=client_reference
    )


def withdraw(*, user: AbstractBaseUser, amount: Decimal, client_reference: str | None = None) -> CashMovement:
    """Take USD out, never more than ``available``. Takes the user lock. Raises
    InsufficientFunds or Conflict (reference reused)."""
    if amount <= 0:
        raise InvalidRequest("The amount must be positive.", details={"amount": ["Must be positive."]})
    return _move_cash(
        user=user, transaction_type=CashTransaction.Type.WITHDRAWAL, amount=-amount, client_reference=client_reference
    )


def adjust_usd_balance(
    *,
    user: AbstractBaseUser,
    amount: Decimal,
    reason: str,
    actor: AbstractBaseUser,
    client_reference: str | None = None,
) -> CashMovement:
    """A staff correction of the USD balance: an ADJUSTMENT row with the reason and the
    staff user. A negative amount may not take more than ``available``. A repeated
    ``client_reference`` (the admin form's one-time key) replays the original row."""
    if not reason.strip():
        raise InvalidRequest("A reason is required.", details={"reason": ["Required."]})
    return _move_cash(
        user=user,
        transaction_type=CashTransaction.Type.ADJUSTMENT,
        amount=amount,
        client_reference=client_reference,
        note=reason.strip(),
        actor=actor,
    )


@transaction.atomic(savepoint=False)
def apply_cash_locked(
    *,
    balance: UsdBalance,
    transaction_type: str,
    amount: Decimal,
    client_reference: str | None = None,
    note: str = "",
    actor: AbstractBaseUser | None = None,
    held_change: Decimal = ZERO,
) -> CashTransaction:
    """Change a locked USD balance by ``amount`` (and its hold by ``held_change``) and write
    the ledger row that explains it: a deposit, a withdrawal, an adjustment or a reset (a
    fill's cash moves in its settlement statement, ``orders.settlement``). The caller holds
    the user lock. Raises BalanceLimitExceeded, before writing, when a credit would pass
    MAX_USD_BALANCE."""
    check_balance_limit(current_balance=balance.current_balance, amount=amount)
    balance.current_balance += amount
    balance.held += held_change
    balance.updated_at = timezone.now()
    balance.save(update_fields=["current_balance", "held", "updated_at"])
    return CashTransaction.objects.create(
        user_id=balance.user_id,
        transaction_type=transaction_type,
        amount=amount,
        balance_after=balance.current_balance,
        client_reference=client_reference,
        note=note,
        actor=actor,
    )


def check_balance_limit(*, current_balance: Decimal, amount: Decimal) -> None:
    """Raise BalanceLimitExceeded if crediting ``amount`` would take a balance of
    ``current_balance`` (read under the user lock) past MAX_USD_BALANCE. The cap keeps every
    balance, and so every fill and hold it pays for, far inside its column: without it a user
    could grow a balance until a resting SELL's fill overflowed it, and that stopped
    process_orders for everyone."""
    if amount > 0 and current_balance + amount > settings.MAX_USD_BALANCE:
        raise BalanceLimitExceeded(
            f"A USD balance is at most {settings.MAX_USD_BALANCE}.",
            details={"current_balance": current_balance, "credit": amount, "limit": settings.MAX_USD_BALANCE},
        )


def require_unheld(*, available: Decimal, quantity: Decimal, message: str) -> None:
    """Raise InsufficientAsset (``message``) unless ``available``, the quantity of a holding
    that no open SELL holds (and what the caller frees), covers ``quantity``: the one check
    of every sale, resting SELL, close and negative adjustment."""
    if available < quantity:
        raise InsufficientAsset(message, details={"available": available, "required": quantity})


@transaction.atomic(savepoint=False)
def change_hold_locked(*, balance: UsdBalance, held_change: Decimal) -> None:
    """Reserve (positive) or release (negative) USD on a locked balance. Holds move no
    money, so they write no ledger row; open orders explain them."""
    balance.held += held_change
    balance.updated_at = timezone.now()
    balance.save(update_fields=["held", "updated_at"])


# --- Asset movements ----------------------------------------------------------------


@transaction.atomic(savepoint=False)
def change_held_quantity_locked(*, holding: AssetBalance, change: Decimal) -> None:
    """Reserve (positive) or release (negative) quantity of a locked holding for open SELL
    orders. Like USD holds, they write no ledger row; open orders explain them."""
    holding.held_quantity += change
    holding.updated_at = timezone.now()
    holding.save(update_fields=["held_quantity", "updated_at"])


@transaction.atomic(savepoint=False)
def update_asset_balance(
    *, holding: AssetBalance | None, user_id: int, asset: Asset, quantity: Decimal, at: datetime
) -> AssetBalance:
    """Apply a signed adjustment of its quantity to a locked holding, or create it, and return
    it. The average purchase price is unchanged, except that it resets to 0 when the holding
    empties (a fill's holding moves in its settlement statement, ``orders.settlement``). The
    caller holds the user lock and writes the asset ledger row."""
    if holding is None:
        holding = AssetBalance(user_id=user_id, asset=asset)
    with localcontext(EXACT):
        holding.quantity += quantity
    if holding.quantity == 0:
        holding.average_purchase_price = ZERO
    holding.last_transaction_at = holding.updated_at = at
    if holding.pk is None:
        holding.save(force_insert=True)
    else:
        holding.save(update_fields=["quantity", "average_purchase_price", "last_transaction_at", "updated_at"])
    return holding


@dataclass(frozen=True)
class AssetMovement:
    transaction: AssetTransaction
    created: bool  # False when an idempotent replay returned the original row


def adjust_asset_balance(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    quantity: Decimal,
    reason: str,
    actor: AbstractBaseUser,
    client_reference: str | None = None,
) -> AssetMovement:
    """A staff correction of a holding: an ADJUSTMENT asset row with the reason and the staff
    user. Takes the user lock, then the holding. A negative quantity may not take more than
    the unheld quantity (raises InsufficientAsset). A repeated ``client_reference`` replays
    the original row; used for a different adjustment it raises Conflict."""
    if not reason.strip():
        raise InvalidRequest("A reason is required.", details={"reason": ["Required."]})
    if quantity == 0:
        raise InvalidRequest("The quantity must not be zero.", details={"quantity": ["Must not be zero."]})
    with transaction.atomic(durable=True), localcontext(EXACT):
        usd_balance_for_update(user_id=user.pk)
        if client_reference is not None:
            # Checked under the user lock: every asset row of this user is written under it,
            # so two submits of one form cannot both miss the other's row.
            existing = AssetTransaction.objects.filter(user_id=user.pk, client_reference=client_reference).first()
            if existing is not None:
                if existing.asset_id != asset.pk or existing.quantity != quantity:
                    raise Conflict(
                        "client_reference was already used for a different adjustment.",
                        details={"client_reference": client_reference},
                    )
                return AssetMovement(existing, created=False)
        holding = asset_balance_for_update(user_id=user.pk, asset_id=asset.asset_id)
        if quantity < 0:
            available = holding.available_quantity if holding else ZERO
            require_unheld(available=available, quantity=-quantity, message=f"Not enough unheld {asset.asset_id}.")
        now = timezone.now()
        update_asset_balance(holding=holding, user_id=user.pk, asset=asset, quantity=quantity, at=now)
        row = AssetTransaction.objects.create(
            user=user,
            asset=asset,
            transaction_type=AssetTransaction.Type.ADJUSTMENT,
            quantity=quantity,
            note=reason.strip(),
            client_reference=client_reference,
            actor=actor,
        )
    return AssetMovement(row, created=True)


# --- Account resets -----------------------------------------------------------------

RESET_NOTE = "Account reset"


def validate_reset_cash(cash: Decimal) -> None:
    """Raise InvalidRequest unless ``cash`` is a USD balance an account may be reset to: whole
    cents, not negative, at most MAX_USD_BALANCE (the limits of any balance)."""
    problem = None
    if not cash.is_finite() or decimal_places(cash) > USD.decimals:
        problem = f"At most {USD.decimals} decimal places."
    elif cash < 0:
        problem = "Must not be negative."
    elif cash > settings.MAX_USD_BALANCE:
        problem = f"At most {settings.MAX_USD_BALANCE} (MAX_USD_BALANCE)."
    if problem is not None:
        raise InvalidRequest("The account cannot be reset to that cash amount.", details={"cash": [problem]})


def replay_reset_locked(*, user_id: int, client_reference: str, cash: Decimal) -> AccountReset | None:
    """The reset already made under ``client_reference``, or None; raises Conflict if it was
    made for another cash amount. The caller holds the user lock: every reset of the user is
    written under it, so two requests with one key cannot both miss the other's row."""
    existing = (
        AccountReset.objects.select_related("cash_transaction")
        .filter(user_id=user_id, client_reference=client_reference)
        .first()
    )
    if existing is not None and existing.cash != cash:
        raise Conflict(
            "client_reference was already used for a reset to another amount.",
            details={"client_reference": client_reference},
        )
    return existing


@transaction.atomic(savepoint=False)
def reset_balances_locked(
    *,
    usd: UsdBalance,
    holdings: list[AssetBalance],
    cash: Decimal,
    released_hold: Decimal,
    released_quantities: dict[str, Decimal],
    cancelled_orders: list[str],
    client_reference: str | None,
    actor: AbstractBaseUser | None,
    reason: str,
) -> AccountReset:
    """The balances' side of an account reset (``orders.services.reset_account`` cancels the
    orders first and passes what their holds were): every holding taken out by a RESET asset
    row (no sale, no P&L; the average price back to 0), USD set to ``cash`` by a RESET cash
    row of the difference (0 included) with the orders' holds released, and the
    ``AccountReset`` record stamped after them all. The caller holds the user lock and the
    holdings' locks (``held_asset_balances_for_update``). Five statements, however many
    holdings: the holdings' update, their rows, the balance, its row, the record."""
    note = reason or RESET_NOTE
    now = timezone.now()
    taken_out, positions = [], []
    with localcontext(EXACT):
        for holding in holdings:
            # Every open SELL was cancelled: its hold goes, and what is left must be 0 (the
            # asset_held_within_quantity constraint refuses anything else once quantity is 0).
            holding.held_quantity -= released_quantities.get(holding.asset_id, ZERO)
            if holding.quantity:
                taken_out.append((holding.asset_id, holding.quantity))
                positions.append({"asset_id": holding.asset_id, "quantity": plain(holding.quantity)})
            holding.quantity = ZERO
            holding.average_purchase_price = ZERO
            holding.last_transaction_at = holding.updated_at = now
    if holdings:
        AssetBalance.objects.bulk_update(
            holdings, ["quantity", "held_quantity", "average_purchase_price", "last_transaction_at", "updated_at"]
        )
    rows = AssetTransaction.objects.bulk_create(
        [
            AssetTransaction(
                user_id=usd.user_id,
                asset_id=asset_id,
                transaction_type=AssetTransaction.Type.RESET,
                quantity=-quantity,
                note=note,
                actor=actor,
            )
            for asset_id, quantity in taken_out
        ]
    )
    cash_row = apply_cash_locked(
        balance=usd,
        transaction_type=CashTransaction.Type.RESET,
        amount=cash - usd.current_balance,
        held_change=-released_hold,
        note=note,
        actor=actor,
    )
    # History starts over here (balances.history): every row of the reset is at or before it.
    at = max([timezone.now(), cash_row.created_at, *(row.created_at for row in rows)])
    return AccountReset.objects.create(
        user_id=usd.user_id,
        created_at=at,
        cash=cash,
        cash_transaction=cash_row,
        cancelled_orders=cancelled_orders,
        positions=positions,
        client_reference=client_reference,
        actor=actor,
        reason=reason,
    )
