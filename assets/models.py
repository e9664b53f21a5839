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


class PriceRecord(models.Model):
    """One observed market price of an asset: the history behind market data and portfolio
    history (SPEC section 11). Written by ``assets.price_history.record_quotes`` for every
    quote the service fetches, at most one row per asset per recording window."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique (asset, slot) index starts with it.
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="price_records", db_index=False)
    price = price_field()
    as_of = models.DateTimeField(help_text="When the provider says the price was observed.")
    source = models.CharField(max_length=32)
    # The start of the PRICE_RECORD_SECONDS window as_of falls in ("window" is an SQL
    # keyword). The unique (asset, slot) constraint is what keeps "at most one row per asset
    # per window" true however many processes record at once.
    slot = models.DateTimeField()

    class Meta:
        ordering = ["asset_id", "-as_of"]
        indexes = [
            # Every read is "the rows of one asset by time": the last price at or before an
            # instant (portfolio history's LATERAL lookups), a range (bars). INCLUDE lets
            # those be index-only scans.
            models.Index(fields=["asset", "as_of"], include=["price"], name="price_record_asset_as_of"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["asset", "slot"], name="price_record_one_per_asset_and_slot"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="price_record_price_positive"),
            models.CheckConstraint(
                condition=models.Q(slot__lte=models.F("as_of")), name="price_record_slot_starts_before_as_of"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.price} at {self.as_of.isoformat()}"
