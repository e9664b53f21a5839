"""Back office for orders (README, "Back office (Django admin)").

Orders are read-only here; the one thing staff do to them is cancel PENDING ones, and
that goes through ``orders.services.cancel_order`` (user lock, hold released, CAS on the
status), which records the staff member on the order as its actor. The user page, which
shows orders and balances together, is backoffice/admin.py.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from balances.models import AssetTransaction, CashTransaction
from core.admin import (
    SafeChangelistMixin,
    UuidSearchMixin,
    admin_changelist_url,
    admin_time,
    decimal_column,
    plain_decimal,
    user_column,
)
from core.exceptions import DomainError
from orders.models import Order
from orders.selectors import get_account_fill_model
from orders.services import cancel_order

CANCEL_PERMISSION = "orders.cancel_order"


@admin.register(Order)
class OrderAdmin(SafeChangelistMixin, UuidSearchMixin, admin.ModelAdmin):
    # Fits a 1,400 px screen beside the filters (the browser test measures every cell): side,
    # quantity and asset read as one column ("BUY 0.5 ETH"), long identifiers wrap inside
    # their column (templates/admin/change_list.html), and the hold is on the order's page
    # and the user's.
    list_display = (
        "short_id",
        "created_display",
        "user_display",
        "what",
        "kind",
        "order_price_display",
        "stop_price_display",
        "status",
        "executed_price_display",
        "total_amount",
        "client_order_id",
        "source",
    )
    list_display_links = ("short_id",)
    # Newest first (Django adds the id to break ties): the id header then carries no sort
    # marker, whose 42 px the list needs.
    ordering = ("-created_at",)
    list_select_related = ("user", "api_key")
    list_filter = ("status", "order_type", "asset", "placed_via", "created_at")
    search_fields = ("user__username", "client_order_id")
    uuid_search_field = "order_id"
    date_hierarchy = "created_at"
    actions = ("cancel_pending_orders",)
    list_per_page = 50
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "order_id",
                    "user",
                    "asset",
                    "order_type",
                    "status",
                    "actor",
                    "failure_reason",
                    "client_order_id",
                )
            },
        ),
        ("Placed through", {"fields": ("placed_via", "api_key")}),
        (
            "Amounts",
            {
                "fields": (
                    "kind",
                    "time_in_force",
                    "quantity",
                    "notional",
                    "order_price",
                    "stop_price",
                    "triggered_at",
                    "filled_quantity",
                    "executed_price",
                    "total_amount",
                    "held_amount",
                )
            },
        ),
        ("Fills and fees", {"fields": ("fills_panel", "fill_model_in_force")}),
        ("Replaced", {"fields": ("replace_chain",)}),
        ("Times", {"fields": ("created_at", "updated_at", "filled_at", "expires_at")}),
        ("Ledger", {"fields": ("ledger_links",)}),
    )
    # Every field is read-only (orders change only through the services): the page's fields, once.
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    # Orders come from the API (services.place_order) and change only through the services.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)

    @admin.action(description="Cancel selected PENDING orders (releases their holds)", permissions=["cancel"])
    def cancel_pending_orders(self, request, queryset):
        cancelled, refused = [], []
        for order in queryset.order_by("created_at"):
            try:
                cancel_order(order=order, actor=request.user)
            except DomainError as error:
                refused.append(f"{str(order.pk)[:8]} ({error.details.get('status', error.message)})")
            else:
                cancelled.append(str(order.pk)[:8])
                self.log_change(request, order, "Cancelled from the back office.")
        if cancelled:
            self.message_user(
                request,
                f"Cancelled {len(cancelled)} order(s), holds released: {', '.join(cancelled)}.",
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                f"Not cancelled, only PENDING orders can be: {', '.join(refused)}.",
                messages.WARNING,
            )

    @admin.display(description="id", ordering="order_id")
    def short_id(self, obj: Order) -> str:
        return str(obj.order_id)[:8]

    user_display = user_column()

    @admin.display(description="created", ordering="created_at")
    def created_display(self, obj: Order) -> str:
        return admin_time(obj.created_at)

    @admin.display(description="order", ordering="asset_id")
    def what(self, obj: Order) -> str:
        return f"{obj.order_type} {plain_decimal(obj.quantity)} {obj.asset_id}"

    @admin.display(description="via", ordering="placed_via")
    def source(self, obj: Order) -> str:
        """Which API placed it and, for Alpaca's, with which key: one column, so the list still
        fits a 1,400 px screen (the browser test measures it)."""
        via = obj.get_placed_via_display()
        return f"{via} · {obj.api_key.key_id}" if obj.api_key_id else via

    @admin.display(description="kind")
    def kind(self, obj: Order) -> str:
        return obj.kind

    @admin.display(description="replace chain")
    def replace_chain(self, obj: Order) -> str:
        """Where a replaced order went and where a replacement came from, as links."""
        links = [
            format_html('{} <a href="{}">{}</a>', label, reverse("admin:orders_order_change", args=[pk]), str(pk)[:8])
            for label, pk in (("replaces", obj.replaces_id), ("replaced by", obj.replaced_by_id))
            if pk is not None
        ]
        return format_html_join(" · ", "{}", ((link,) for link in links)) if links else "-"

    order_price_display = decimal_column("order_price", "limit price", ordering="order_price")

    stop_price_display = decimal_column("stop_price", "stop price", ordering="stop_price")

    executed_price_display = decimal_column("executed_price", "executed price", ordering="executed_price")

    @admin.display(description="fills and fees")
    def fills_panel(self, obj: Order) -> str:
        """Each fill of the order and each fee, as its ledger rows say (docs/DESIGN.md, "Fill
        model"): the order's asset rows and its USD fee rows, a query each."""
        rows = [
            (
                admin_time(row.created_at),
                row.transaction_type,
                plain_decimal(row.quantity),
                plain_decimal(row.price_per_unit),
                row.total_amount if row.total_amount is not None else "-",
            )
            for row in AssetTransaction.objects.filter(order=obj).order_by("id")
        ] + [
            (admin_time(row.created_at), "FEE (USD)", "-", "-", row.amount)
            for row in CashTransaction.objects.filter(order=obj, transaction_type=CashTransaction.Type.FEE).order_by(
                "id"
            )
        ]
        if not rows:
            return "No fills."
        return format_html(
            '<table id="order-fills"><tr><th>at</th><th>row</th><th>quantity</th><th>price</th><th>USD</th></tr>'
            "{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="fill model in force now")
    def fill_model_in_force(self, obj: Order) -> str:
        params, row = get_account_fill_model(user_id=obj.user_id)
        source = "the account's own" if row is not None else "the deployment's default"
        return (
            f"{params.profile} ({source}): spread {plain_decimal(params.spread_bps)} bps, "
            f"maker {plain_decimal(params.maker_fee_bps)} / taker {plain_decimal(params.taker_fee_bps)} bps"
        )

    @admin.display(description="ledger rows")
    def ledger_links(self, obj: Order) -> str:
        return format_html(
            '<a href="{}">cash transactions</a> · <a href="{}">asset transactions</a>'
            ' · <a href="{}">all orders of {}</a>',
            admin_changelist_url("balances_cashtransaction", order=obj.pk),
            admin_changelist_url("balances_assettransaction", order=obj.pk),
            admin_changelist_url("orders_order", user=obj.user_id),
            obj.user.username,
        )
