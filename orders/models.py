import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from core.money import plain, price_field, quantity_field, usd_field

CLIENT_ORDER_ID_CONSTRAINT = "order_client_order_id_unique_per_user"
# A status shown, never stored: an open (PENDING) order part of which filled (docs/DESIGN.md, "Fill model").
PARTIALLY_FILLED = "PARTIALLY_FILLED"


class Order(models.Model):
    """A BUY or SELL of one asset. Its kind follows from the prices it carries (docs/DESIGN.md, "How an order flows"):
    none is a market order, filled at once; ``order_price`` a limit order that rests
    (PENDING, with a hold) until the market crosses the limit or it expires; ``stop_price`` a
    stop that becomes a market order when the market reaches it; both a stop-limit that
    becomes a limit order then (``triggered_at``)."""

    class Type(models.TextChoices):
        BUY = "BUY"
        SELL = "SELL"

    class Status(models.TextChoices):
        PENDING = "PENDING"
        COMPLETED = "COMPLETED"
        CANCELLED = "CANCELLED"
        EXPIRED = "EXPIRED"
        FAILED = "FAILED"
        REPLACED = "REPLACED"

    class Kind(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"
        STOP = "stop"
        STOP_LIMIT = "stop_limit"

    class TimeInForce(models.TextChoices):
        GTC = "gtc", "good till cancelled"
        IOC = "ioc", "immediate or cancel"
        FOK = "fok", "fill or kill"

    class PlacedVia(models.TextChoices):
        API = "api", "/api/v1"
        ALPACA = "alpaca", "Alpaca /v2"

    order_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    asset = models.ForeignKey("assets.Asset", on_delete=models.PROTECT, related_name="orders")
    order_type = models.CharField(max_length=4, choices=Type.choices)
    quantity = quantity_field()
    order_price = price_field(
        null=True,
        blank=True,
        help_text="Limit price (a limit or stop-limit order); empty for a market or stop order.",
    )
    total_amount = usd_field(
        null=True,
        blank=True,
        help_text="USD of the fills so far: a BUY's cost rounded up to the cent, a SELL's proceeds rounded "
        "down; empty until it fills.",
    )
    executed_price = price_field(null=True, blank=True, help_text="The fills' average price so far.")
    # What has filled so far (docs/DESIGN.md, "Fill model"): the whole quantity once COMPLETED;
    # part of it while a resting order is partly filled, which stays PENDING (open: its holds,
    # cancel and replace work on what is left) and is shown as PARTIALLY_FILLED.
    filled_quantity = quantity_field(default=0, db_default=0)
    held_amount = usd_field(
        default=0,
        help_text="USD this order reserves of the user's balance while it is PENDING, for what is left to "
        "fill: a BUY with a limit holds quantity x limit price, a stop BUY quantity x stop price x "
        "(1 + STOP_BUY_HOLD_MARGIN), rounded up to the cent. 0 for a SELL (its quantity is held on the "
        "holding) and once the order is no longer PENDING.",
    )
    stop_price = price_field(null=True, blank=True, help_text="Stop price; empty unless a stop or stop-limit order.")
    triggered_at = models.DateTimeField(null=True, blank=True, help_text="When the market reached the stop price.")
    notional = usd_field(null=True, blank=True, help_text="USD asked for instead of a quantity (market orders).")
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="The order this replaced."
    )
    replaced_by = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The order that replaced this.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.CharField(max_length=255, blank=True, default="")
    # What the request that placed a FAILED order was answered (the error's code and details),
    # so that a repeated client_order_id answers the same 422 (docs/DESIGN.md, "How an order
    # flows").
    # A 503 stores no order; rows of 503s stored before give up their key to the retry.
    failure_code = models.CharField(max_length=32, blank=True, default="")
    failure_details = models.JSONField(blank=True, default=dict)
    client_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - NULL = no key, unique when set
    expires_at = models.DateTimeField(null=True, blank=True)
    # Not auto_now_add: an order filled on arrival is created and filled at the same instant,
    # which place_order sets explicitly (auto_now_add would stamp it after filled_at).
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    # Which API placed the order, for support ("my bot placed this?"). A database default, so
    # rows written by raw SQL that predates the column still say where they came from.
    placed_via = models.CharField(max_length=8, choices=PlacedVia.choices, db_default=PlacedVia.API)
    # The API key a program placed it with (none for a token, a session or the back office).
    # No index: nothing reads orders by key, and every order insert would pay for one.
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    # Back-office staff who cancelled or replaced the order on the user's behalf (the API with
    # a back-office permission, or the admin's cancel action); empty when the user or the
    # engine ended it. No index, as for api_key: support reads it on one order at a time.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name="back-office actor",
        help_text="The staff member who cancelled or replaced it on the user's behalf.",
    )

    class Meta:
        ordering = ["-created_at", "-order_id"]
        # Granted to Operations (migration 0008); cancel_order comes from balances.0002.
        permissions = [("replace_order", "Can replace pending orders on a user's behalf")]
        indexes = [
            # get_orders_by_user and get_orders_by_user_and_asset, newest first.
            models.Index(fields=["user", "-created_at"], name="order_user_newest"),
            models.Index(fields=["user", "asset", "-created_at"], name="order_user_asset_newest"),
            # process_orders scans only the resting orders, however long the history.
            models.Index(fields=["asset", "order_type"], condition=Q(status="PENDING"), name="order_pending_by_asset"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_order_id"],
                condition=Q(client_order_id__isnull=False),
                name=CLIENT_ORDER_ID_CONSTRAINT,
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(order_price__isnull=True) | Q(order_price__gt=0), name="order_price_positive"
            ),
            models.CheckConstraint(condition=Q(held_amount__gte=0), name="order_held_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(executed_price__isnull=True) | Q(executed_price__gt=0), name="order_executed_price_positive"
            ),
            models.CheckConstraint(
                condition=~Q(status="COMPLETED") | Q(executed_price__isnull=False, filled_at__isnull=False),
                name="order_completed_has_fill",
            ),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0, filled_quantity__lte=F("quantity"))
                & (~Q(status="COMPLETED") | Q(filled_quantity=F("quantity"))),
                # Named to sort after order_quantity_positive: PostgreSQL checks in name order,
                # and a quantity of 0 or less is that constraint's refusal.
                name="order_remaining_fits_status",
            ),
            models.CheckConstraint(
                condition=Q(stop_price__isnull=True) | Q(stop_price__gt=0), name="order_stop_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(notional__isnull=True) | Q(notional__gt=0), name="order_notional_positive"
            ),
            models.CheckConstraint(
                condition=Q(status="REPLACED", replaced_by__isnull=False) | Q(~Q(status="REPLACED"), replaced_by=None),
                name="order_replaced_iff_successor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_type} {plain(self.quantity)} {self.asset_id} ({self.status})"

    @property
    def is_limit(self) -> bool:
        return self.order_price is not None

    @property
    def remaining_quantity(self) -> Decimal:
        """What is still to fill of an open order (all of it unless partly filled)."""
        return self.quantity - self.filled_quantity

    @property
    def held_quantity(self) -> Decimal:
        """What a resting SELL reserves of the holding: what is still to fill of it."""
        if self.status == self.Status.PENDING and self.order_type == self.Type.SELL:
            return self.remaining_quantity
        return Decimal(0)

    @property
    def partly_filled(self) -> bool:
        return self.status == self.Status.PENDING and self.filled_quantity > 0

    @property
    def shown_status(self) -> str:
        """The status the APIs show: a PENDING order part of which filled is PARTIALLY_FILLED."""
        return PARTIALLY_FILLED if self.partly_filled else self.status

    @property
    def kind(self) -> str:
        return kind_of(order_price=self.order_price, stop_price=self.stop_price)

    @property
    def by_back_office(self) -> bool:
        """Whether back-office staff cancelled or replaced it (``actor``), read without a query."""
        return self.actor_id is not None


def kind_of(*, order_price, stop_price) -> str:
    if stop_price is None:
        return Order.Kind.MARKET if order_price is None else Order.Kind.LIMIT
    return Order.Kind.STOP if order_price is None else Order.Kind.STOP_LIMIT


# The kinds as filters on the two price columns (``?kind=`` of the order list).
KIND_FILTERS = {
    Order.Kind.MARKET: Q(order_price__isnull=True, stop_price__isnull=True),
    Order.Kind.LIMIT: Q(order_price__isnull=False, stop_price__isnull=True),
    Order.Kind.STOP: Q(order_price__isnull=True, stop_price__isnull=False),
    Order.Kind.STOP_LIMIT: Q(order_price__isnull=False, stop_price__isnull=False),
}


class OrderEventRecord(models.Model):
    """An order event on its way to the streams (orders/events.py): written in the transaction
    that changed the order, so it exists exactly when that change committed; each server
    process's stream hub reads the new ones. Also in the table, added by its migration as
    Django has no field for it: ``txid`` (xid8), the writing transaction's id, by which a
    reader knows which rows can no longer appear behind the ones it has read. UNLOGGED: an
    event is worth nothing after a crash (streams reconnect and clients re-read their orders),
    so it costs no WAL. Rows are deleted a few minutes after they were written."""

    id = models.BigAutoField(primary_key=True)
    payload = models.TextField()  # OrderEvent.to_json()
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"order event {self.id}"


class AccountFillModel(models.Model):
    """An account's own fill model (docs/DESIGN.md, "Fill model"), set by the user or by
    Operations; an account without one fills under the deployment's (settings ``FILL_MODEL``).
    Applies to orders placed (and resting fills made) after it is saved. Never deleted: going
    back to the deployment's default stores its parameters here."""

    class Profile(models.TextChoices):
        IDEAL = "ideal"
        REALISTIC = "realistic"
        CUSTOM = "custom"

    class Slippage(models.TextChoices):
        NONE = "none"
        VOLUME_SHARE = "volume_share"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="fill_model"
    )
    profile = models.CharField(max_length=10, choices=Profile.choices)
    spread_bps = models.DecimalField(
        max_digits=6, decimal_places=2, help_text="bid = mid x (1 - s/2), ask = mid x (1 + s/2)."
    )
    slippage = models.CharField(max_length=12, choices=Slippage.choices)
    volume_limit = models.DecimalField(max_digits=5, decimal_places=4)
    price_impact = models.DecimalField(max_digits=5, decimal_places=4)
    fill_participation = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True, help_text="Empty: resting orders fill whole."
    )
    maker_fee_bps = models.DecimalField(max_digits=6, decimal_places=2)
    taker_fee_bps = models.DecimalField(max_digits=6, decimal_places=2)
    seed = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    # Back-office staff who set it last; empty when the user did.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(spread_bps__gte=0, spread_bps__lte=1000), name="fill_model_spread_in_range"
            ),
            models.CheckConstraint(
                condition=Q(volume_limit__gt=0, volume_limit__lte=1), name="fill_model_volume_limit_in_range"
            ),
            models.CheckConstraint(
                condition=Q(price_impact__gte=0, price_impact__lte=1), name="fill_model_price_impact_in_range"
            ),
            models.CheckConstraint(
                condition=Q(fill_participation__isnull=True) | Q(fill_participation__gt=0, fill_participation__lte=1),
                name="fill_model_participation_in_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    maker_fee_bps__gte=0, maker_fee_bps__lte=1000, taker_fee_bps__gte=0, taker_fee_bps__lte=1000
                ),
                name="fill_model_fees_in_range",
            ),
            models.CheckConstraint(condition=Q(seed__gte=0), name="fill_model_seed_not_negative"),
        ]

    def __str__(self) -> str:
        return f"fill model of user {self.user_id} ({self.profile})"
