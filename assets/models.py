from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from core.money import price_field, quantity_field

# The simulated market's daily moves (assets.price_providers): past 20 % a day its walk would
# reach nearly twice its reference price, further than MAX_PRICE_JUMP between two visits.
MAX_DAILY_VOLATILITY = Decimal("0.2")
DAILY_VOLATILITY_DECIMALS = 4

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
    daily_volatility = models.DecimalField(
        max_digits=DAILY_VOLATILITY_DECIMALS + 1,
        decimal_places=DAILY_VOLATILITY_DECIMALS,
        default=Decimal("0.05"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(MAX_DAILY_VOLATILITY)],
        help_text="How far the simulated market moves it in a typical day, as a fraction: "
        "0.03 is 3 % (BTC), 0.001 a stablecoin.",
    )
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
            models.CheckConstraint(
                condition=models.Q(daily_volatility__gte=0, daily_volatility__lte=MAX_DAILY_VOLATILITY),
                name="asset_daily_volatility_0_to_20_percent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} ({self.name})"

    @property
    def step(self) -> Decimal:
        """The smallest quantity of the asset, which every quantity is a multiple of: 0.00000001
        for 8 decimals."""
        return Decimal(1).scaleb(-self.quantity_decimals)


class PriceRecord(models.Model):
    """One observed market price of an asset: the history behind market data and portfolio
    history (docs/DESIGN.md, "Prices and the price guard"). Written by ``assets.price_history.record_quotes`` for every
    quote the price guard accepts, at most one row per asset per recording window."""

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


class LastGoodPrice(models.Model):
    """The price guard's memory of one asset (docs/DESIGN.md, "Prices and the price guard"):
    its last good price, when the provider was last asked about it, and the level it is
    watching, if any (a quote too far from the last good price, not yet confirmed).

    Kept here rather than in the cache so that a Redis restart or outage forgets nothing, and
    so that every server process serves the same, newest price. Written only by
    ``assets.price_guard`` with compare-and-swap statements on ``version``: a write based on
    a row that another process changed meanwhile changes nothing, and is judged again."""

    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, primary_key=True, related_name="last_good_price")
    price = price_field()
    as_of = models.DateTimeField(help_text="When the provider says the price was observed.")
    source = models.CharField(max_length=32)
    checked_at = models.DateTimeField(
        help_text="When the provider last answered for this asset (our clock); asked again PRICE_CACHE_SECONDS after."
    )
    candidate_price = price_field(null=True, blank=True, help_text="A level far from the price, not yet confirmed.")
    candidate_since = models.DateTimeField(null=True, blank=True, help_text="The first fetch that saw the level.")
    candidate_seen_at = models.DateTimeField(null=True, blank=True, help_text="The last fetch counted for it.")
    candidate_fetches = models.PositiveSmallIntegerField(default=0, help_text="Fetches counted for it.")
    version = models.PositiveBigIntegerField(default=1, help_text="One more on every write.")
    volume = quantity_field(
        null=True, blank=True, help_text="Units traded in the minute of the price, if the provider says (fill model)."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gt=0), name="last_good_price_positive"),
            # A candidate is all its columns or none of them.
            models.CheckConstraint(
                condition=models.Q(
                    candidate_price__isnull=True,
                    candidate_since__isnull=True,
                    candidate_seen_at__isnull=True,
                    candidate_fetches=0,
                )
                | models.Q(
                    # Spelled out: a CHECK passes when its expression is NULL.
                    candidate_price__isnull=False,
                    candidate_since__isnull=False,
                    candidate_seen_at__isnull=False,
                    candidate_price__gt=0,
                    candidate_since__lte=models.F("candidate_seen_at"),
                    candidate_fetches__gte=1,
                ),
                name="last_good_price_candidate_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.price} at {self.as_of.isoformat()}"
