"""Balances and their append-only ledgers.

The ledgers explain the balances at all times (docs/DESIGN.md, "Ledgers"): a USD balance equals the
sum of its cash transactions, an asset quantity the signed sum of its asset transactions.
Rows are written by ``balances.services`` in the same transaction as the balance they
explain, and never updated or deleted afterwards.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.money import price_field, quantity_field, usd_field


class UsdBalance(models.Model):
    """The user's cash. Its row is also the user lock that serialises every money flow."""

    currency = "USD"  # the one cash currency; named so that answers can say so

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="usd_balance")
    current_balance = usd_field(default=0)
    held = usd_field(default=0, help_text="Reserved by open BUY limit, stop and stop-limit orders.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(current_balance__gte=0), name="usd_balance_not_negative"),
            models.CheckConstraint(condition=Q(held__gte=0), name="usd_held_not_negative"),
            models.CheckConstraint(condition=Q(held__lte=F("current_balance")), name="usd_held_within_balance"),
        ]

    def __str__(self) -> str:
        return f"{self.user} USD {self.current_balance}"

    @property
    def available(self):
        return self.current_balance - self.held


class AssetBalance(models.Model):
    """A user's holding of one asset. Market value is computed when asked, never stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="asset_balances")
    asset = models.ForeignKey("assets.Asset", on_delete=models.PROTECT, related_name="balances")
    quantity = quantity_field(default=0)
    held_quantity = quantity_field(default=0, help_text="Reserved by open SELL limit, stop and stop-limit orders.")
    average_purchase_price = price_field(default=0)
    total_bought = quantity_field(default=0)
    total_sold = quantity_field(default=0)
    last_transaction_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "asset"], name="asset_balance_one_per_user_and_asset"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="asset_quantity_not_negative"),
            models.CheckConstraint(condition=Q(held_quantity__gte=0), name="asset_held_not_negative"),
            models.CheckConstraint(condition=Q(held_quantity__lte=F("quantity")), name="asset_held_within_quantity"),
            models.CheckConstraint(condition=Q(average_purchase_price__gte=0), name="asset_average_price_not_negative"),
            models.CheckConstraint(
                condition=Q(total_bought__gte=0, total_sold__gte=0), name="asset_totals_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.asset_id} {self.quantity}"

    @property
    def available_quantity(self):
        return self.quantity - self.held_quantity


class CashTransaction(models.Model):
    """One line of the USD ledger. ``amount`` is signed: money in is positive."""

    class Type(models.TextChoices):
        DEPOSIT = "DEPOSIT"
        WITHDRAWAL = "WITHDRAWAL"
        BUY = "BUY"
        SELL = "SELL"
        ADJUSTMENT = "ADJUSTMENT"
        RESET = "RESET"  # an account reset set the balance to its amount (AccountReset)
        FEE = "FEE"  # a SELL's fee, in USD (docs/DESIGN.md, "Fill model"): negative

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cash_transactions")
    transaction_type = models.CharField(max_length=16, choices=Type.choices)
    amount = usd_field()
    balance_after = usd_field()
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="cash_transactions"
    )
    client_reference = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL = no key, unique when set
    note = models.TextField(blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The staff user who made an adjustment.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="cash_tx_user_newest"),
            # The activity feed's cash movements without walking past every trade's cash row
            # (a SELL's USD fee is in the feed: docs/DESIGN.md, "Fill model").
            models.Index(
                fields=["user", "-created_at", "-id"],
                condition=Q(transaction_type__in=["DEPOSIT", "WITHDRAWAL", "ADJUSTMENT", "RESET", "FEE"]),
                name="cash_tx_user_feed_newest",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_reference"],
                condition=Q(client_reference__isnull=False),
                name="cash_tx_client_reference_unique_per_user",
            ),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="cash_tx_balance_after_not_negative"),
            # The sign of the amount follows from its type; adjustments go either way. A reset
            # sets the balance to an amount, so its row is the difference, whatever it is: 0
            # when the cash was already that amount (the row still records the reset).
            models.CheckConstraint(
                condition=(
                    Q(transaction_type__in=["DEPOSIT", "SELL"], amount__gt=0)
                    | Q(transaction_type__in=["WITHDRAWAL", "BUY", "FEE"], amount__lt=0)
                    | (Q(transaction_type="ADJUSTMENT") & ~Q(amount=0))
                    | Q(transaction_type="RESET")
                ),
                name="cash_tx_amount_sign_matches_type",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.amount} ({self.user})"


class AssetTransaction(models.Model):
    """One line of an asset ledger. ``quantity`` is positive for BUY and SELL; an
    ADJUSTMENT carries its sign (negative takes asset away); a RESET is negative (an account
    reset took the holding out, without a sale), and so is a FEE (a BUY's fee, paid in the asset)."""

    class Type(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"
        ADJUSTMENT = "ADJUSTMENT"
        RESET = "RESET"
        FEE = "FEE"  # a BUY's fee, in the asset received (docs/DESIGN.md, "Fill model"): negative

    class Status(models.TextChoices):
        # Every row is written COMPLETED: a fill or an adjustment settles in the transaction
        # that writes its row, so there is nothing to wait for. PENDING and FAILED are the
        # original design's states for a settlement that would finish later (the original design
        # keeps the column and its values); reconcile_ledger counts COMPLETED rows only.
        COMPLETED = "COMPLETED"
        PENDING = "PENDING"
        FAILED = "FAILED"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="asset_transactions")
    asset = models.ForeignKey("assets.Asset", on_delete=models.PROTECT, related_name="transactions")
    transaction_type = models.CharField(max_length=16, choices=Type.choices)
    quantity = quantity_field()
    price_per_unit = price_field(null=True, blank=True)
    total_amount = usd_field(null=True, blank=True)
    realized_pnl = usd_field(null=True, blank=True)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="asset_transactions"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    price_source = models.CharField(max_length=32, blank=True, default="")
    note = models.TextField(blank=True, default="")
    # Set by the back office's adjustment form, so a double submit writes one row.
    client_reference = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL = no key, unique when set
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="asset_tx_user_newest"),
            models.Index(fields=["user", "asset", "-created_at", "-id"], name="asset_tx_user_asset_newest"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(transaction_type__in=["BUY", "SELL"], quantity__gt=0)
                | (Q(transaction_type="ADJUSTMENT") & ~Q(quantity=0))
                | Q(transaction_type__in=["RESET", "FEE"], quantity__lt=0),
                name="asset_tx_quantity_positive",
            ),
            models.CheckConstraint(
                condition=Q(price_per_unit__isnull=True) | Q(price_per_unit__gt=0), name="asset_tx_price_positive"
            ),
            models.UniqueConstraint(
                fields=["user", "client_reference"],
                condition=Q(client_reference__isnull=False),
                name="asset_tx_client_reference_unique_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.quantity} {self.asset_id} ({self.user})"


class AccountReset(models.Model):
    """A paper account started over: its open orders cancelled, every holding taken out by a
    RESET asset row, its cash set to ``cash`` by a RESET cash row (``cash_transaction``, of
    amount 0 when the cash was that already). API keys, tokens and settings stay.

    Three things at once (docs/DESIGN.md, "Reset and exports"): the idempotency record of the
    request (``client_reference``, unique per user); the answer it gave, kept to give it again
    (``cancelled_orders``, ``positions``); and the instant the account's history starts over
    from (``created_at``, stamped after every row the reset wrote, under the user lock, so each
    of them is at or before it). Written once, never changed (a trigger refuses it)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="account_resets")
    created_at = models.DateTimeField()
    cash = usd_field(help_text="The USD balance the reset set.")
    cash_transaction = models.OneToOneField(
        CashTransaction, on_delete=models.PROTECT, related_name="account_reset", help_text="Its RESET cash row."
    )
    # What the reset answered, as it answered it: order ids, and {"asset_id", "quantity"}
    # (quantities written plainly) of each holding taken out.
    cancelled_orders = models.JSONField(default=list, blank=True)
    positions = models.JSONField(default=list, blank=True)
    client_reference = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL = no key, unique when set
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The staff member who reset the account from the back office.",
    )
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("reset_account", "Can reset a user's paper account")]
        indexes = [models.Index(fields=["user", "-created_at"], name="account_reset_user_newest")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_reference"],
                condition=Q(client_reference__isnull=False),
                name="account_reset_client_reference_unique_per_user",
            ),
            models.CheckConstraint(condition=Q(cash__gte=0), name="account_reset_cash_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user} reset to USD {self.cash}"

    @property
    def by_back_office(self) -> bool:
        return self.actor_id is not None
