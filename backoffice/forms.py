"""The back office's own forms (docs/DESIGN.md, "Fill model")."""

from __future__ import annotations

from decimal import Decimal

from django import forms

KEEP = ""


class FillModelForm(forms.Form):
    """An account's fill model: a profile, or each parameter (checked again by the service)."""

    profile = forms.ChoiceField(
        choices=[(KEEP, "the parameters below"), ("ideal", "ideal"), ("realistic", "realistic")],
        required=False,
        help_text="A profile replaces every parameter with its own.",
    )
    spread_bps = forms.DecimalField(max_digits=6, decimal_places=2, min_value=Decimal(0), max_value=Decimal(1000))
    slippage = forms.ChoiceField(choices=[("none", "none"), ("volume_share", "volume share")])
    volume_limit = forms.DecimalField(max_digits=5, decimal_places=4, min_value=Decimal("0.0001"), max_value=Decimal(1))
    price_impact = forms.DecimalField(max_digits=5, decimal_places=4, min_value=Decimal(0), max_value=Decimal(1))
    fill_participation = forms.DecimalField(
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal(1),
        required=False,
        help_text="Empty: resting orders fill whole.",
    )
    maker_fee_bps = forms.DecimalField(max_digits=6, decimal_places=2, min_value=Decimal(0), max_value=Decimal(1000))
    taker_fee_bps = forms.DecimalField(max_digits=6, decimal_places=2, min_value=Decimal(0), max_value=Decimal(1000))
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1)
