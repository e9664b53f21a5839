"""Forms of the back office's balance adjustments (README, "Back office (Django admin)").

They only parse and check the input; the adjustment itself, its ledger row and its locks
belong to ``balances.services.adjust_usd_balance`` / ``adjust_asset_balance``.
"""

from __future__ import annotations

from uuid import uuid4

from django import forms
from django.conf import settings

from assets.models import Asset
from core.money import QUANTITY, USD, Precision, decimal_places

REASON_HELP = "Why the balance changes. Stored on the ledger row with your username; the user's history shows it."


class _AdjustmentForm(forms.Form):
    reason = forms.CharField(
        max_length=500, strip=True, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=REASON_HELP
    )
    # A one-time key minted when the form is shown and stored on the ledger row as its
    # client_reference: a double click, a resubmitted POST or a second tab posting the same
    # form writes one adjustment, not two.
    submission_key = forms.CharField(min_length=8, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("submission_key", new_submission_key())


def new_submission_key() -> str:
    return f"admin-{uuid4().hex}"


class NonZeroDecimalField(forms.DecimalField):
    """A signed change: any decimal the column holds but zero, which would change nothing."""

    def __init__(self, precision: Precision, *, what: str, **kwargs) -> None:
        self.what = what
        super().__init__(max_digits=precision.max_digits, decimal_places=precision.decimals, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value == 0:
            raise forms.ValidationError(f"The {self.what} must not be zero.")
        return value


class UsdAdjustmentForm(_AdjustmentForm):
    field_order = ["amount", "reason"]

    amount = NonZeroDecimalField(
        USD,
        what="amount",
        help_text="USD, signed: positive credits the user, negative debits (never more than available).",
    )


class AssetAdjustmentForm(_AdjustmentForm):
    field_order = ["asset", "quantity", "reason"]

    asset = forms.ModelChoiceField(queryset=Asset.objects.order_by("asset_id"))
    quantity = NonZeroDecimalField(
        QUANTITY,
        what="quantity",
        help_text="Signed: positive adds to the holding, negative takes away (never more than the unheld quantity).",
    )

    def clean(self):
        cleaned = super().clean()
        asset, quantity = cleaned.get("asset"), cleaned.get("quantity")
        if asset is not None and quantity is not None and decimal_places(quantity) > asset.quantity_decimals:
            self.add_error("quantity", f"{asset.asset_id} quantities have at most {asset.quantity_decimals} decimals.")
        return cleaned


class AccountResetForm(_AdjustmentForm):
    """The back office's reset of a user's paper account: the cash it starts over with, and why."""

    field_order = ["cash", "reason"]

    cash = forms.DecimalField(
        max_digits=USD.max_digits,
        decimal_places=USD.decimals,
        min_value=0,
        help_text="USD the account starts over with (whole cents, at most MAX_USD_BALANCE).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].help_text = (
            "Why the account is reset. Stored with your username on the reset and its ledger rows; "
            "the user's activities show it."
        )
        if not self.is_bound:
            self.initial.setdefault("cash", settings.INITIAL_USD_BALANCE)

    def clean_cash(self):
        cash = self.cleaned_data["cash"]
        if cash > settings.MAX_USD_BALANCE:
            raise forms.ValidationError(f"At most {settings.MAX_USD_BALANCE} (MAX_USD_BALANCE).")
        return cash
