from django.core.validators import RegexValidator
from django.db import models

from core.money import price_field

asset_id_validator = RegexValidator(r"^[A-Z0-9]{1,16}$", "Asset ids are 1 to 16 upper-case letters or digits.")


class Asset(models.Model):
    """A tradable instrument of the inventory, priced in USD."""

    asset_id = models.CharField(max_length=16, primary_key=True, validators=[asset_id_validator])
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True, help_text="Only active assets can be traded.")
    quantity_decimals = models.PositiveSmallIntegerField(
        default=8, help_text="The quantity step: 8 means orders come in multiples of 0.00000001."
    )
    coingecko_id = models.CharField(max_length=100, blank=True, help_text="CoinGecko's id, e.g. bitcoin.")
    reference_price = price_field(help_text="USD price the simulated market walks around.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(asset_id__regex=r"^[A-Z0-9]{1,16}$"), name="asset_id_upper_case"),
            models.CheckConstraint(
                condition=models.Q(quantity_decimals__gte=0, quantity_decimals__lte=18),
                name="asset_quantity_decimals_0_to_18",
            ),
            models.CheckConstraint(condition=models.Q(reference_price__gt=0), name="asset_reference_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} ({self.name})"
