"""Back office for orders and for users with their money (SPEC section 7).

Orders are read-only here; the one thing staff do to them is cancel PENDING ones, and
that goes through ``orders.services.cancel_order`` (user lock, hold released, CAS on the
status). The user pages live in this module because it is the one admin module allowed to
import both ``orders`` and ``balances`` (imports run orders -> balances -> assets).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from assets.admin import plain_decimal
from balances.admin import ADJUST_PERMISSION, UuidSearchMixin, admin_changelist_url, user_link
from balances.models import UsdBalance
from balances.selectors import get_holdings, value_holdings
from core.admin import SafeChangelistMixin
from core.exceptions import DomainError
from orders.models import Order
from orders.selectors import get_orders_by_user
from orders.services import cancel_order

CANCEL_PERMISSION = "orders.cancel_order"
RECENT_ORDERS = 10

User = get_user_model()


@admin.register(Order)
class OrderAdmin(SafeChangelistMixin, UuidSearchMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "created_at",
        "user_display",
        "asset_display",
        "order_type",
        "kind",
        "quantity_display",
        "order_price_display",
        "status",
        "executed_price_display",
        "total_amount",
        "held_amount",
        "client_order_id",
    )
    list_display_links = ("short_id",)
    list_select_related = ("user",)
    list_filter = ("status", "order_type", "asset", "created_at")
    search_fields = ("user__username", "client_order_id")
    uuid_search_field = "order_id"
    date_hierarchy = "created_at"
    actions = ("cancel_pending_orders",)
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("order_id", "user", "asset", "order_type", "status", "failure_reason", "client_order_id")}),
        ("Amounts", {"fields": ("quantity", "order_price", "executed_price", "total_amount", "held_amount")}),
        ("Times", {"fields": ("created_at", "updated_at", "filled_at", "expires_at")}),
        ("Ledger", {"fields": ("ledger_links",)}),
    )
    readonly_fields = (
        "order_id",
        "user",
        "asset",
        "order_type",
        "status",
        "failure_reason",
        "client_order_id",
        "quantity",
        "order_price",
        "executed_price",
        "total_amount",
        "held_amount",
        "created_at",
        "updated_at",
        "filled_at",
        "expires_at",
        "ledger_links",
    )

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
                cancel_order(order=order)
            except DomainError as error:
                refused.append(f"{str(order.pk)[:8]}: {error.message}")
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
            self.message_user(request, f"Not cancelled: {'; '.join(refused)}", messages.WARNING)

    @admin.display(description="order", ordering="order_id")
    def short_id(self, obj: Order) -> str:
        return str(obj.order_id)[:8]

    @admin.display(description="user", ordering="user__username")
    def user_display(self, obj: Order) -> str:
        return user_link(obj.user_id, obj.user.username)

    @admin.display(description="asset", ordering="asset_id")
    def asset_display(self, obj: Order) -> str:
        return obj.asset_id

    @admin.display(description="kind")
    def kind(self, obj: Order) -> str:
        return "limit" if obj.is_limit else "market"

    @admin.display(description="quantity", ordering="quantity")
    def quantity_display(self, obj: Order) -> str:
        return plain_decimal(obj.quantity)

    @admin.display(description="limit price", ordering="order_price")
    def order_price_display(self, obj: Order) -> str:
        return plain_decimal(obj.order_price)

    @admin.display(description="executed price", ordering="executed_price")
    def executed_price_display(self, obj: Order) -> str:
        return plain_decimal(obj.executed_price)

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


# --- Users ----------------------------------------------------------------------------

admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class ApiTokenAdmin(SafeChangelistMixin, TokenAdmin):
    """DRF's token admin, with malformed selections and lookups answered, not a 500."""


@admin.register(Group)
class StaffGroupAdmin(SafeChangelistMixin, GroupAdmin):
    """Django's group admin, with malformed selections and lookups answered, not a 500."""


@admin.register(User)
class PortfolioUserAdmin(SafeChangelistMixin, UserAdmin):
    """Django's user admin plus the user's money on one page: USD balance, holdings at
    market price and recent orders, read-only, with links to the ledgers."""

    change_form_template = "admin/orders/user/change_form.html"
    list_display = (
        "username",
        "email",
        "is_staff",
        "usd_current_balance",
        "usd_held",
        "usd_available",
        "date_joined",
    )
    list_select_related = ("usd_balance",)
    money_fields = ("usd_balance_panel", "holdings_panel", "recent_orders_panel")
    readonly_fields = money_fields
    fieldsets = (
        UserAdmin.fieldsets[0],
        ("Money", {"fields": money_fields}),
        *UserAdmin.fieldsets[1:],
    )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        balance_id = None
        if str(object_id).isdigit():  # a malformed id is left to Django's "does not exist" handling
            balance_id = UsdBalance.objects.filter(user_id=object_id).values_list("pk", flat=True).first()
        extra_context = {
            **(extra_context or {}),
            "can_adjust": request.user.has_perm(ADJUST_PERMISSION),
            "usd_balance_id": balance_id,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _balance(user) -> UsdBalance | None:
        try:
            return user.usd_balance
        except UsdBalance.DoesNotExist:
            return None

    @admin.display(description="USD balance", ordering="usd_balance__current_balance")
    def usd_current_balance(self, user):
        balance = self._balance(user)
        return balance.current_balance if balance else None

    @admin.display(description="USD held", ordering="usd_balance__held")
    def usd_held(self, user):
        balance = self._balance(user)
        return balance.held if balance else None

    @admin.display(description="USD available")
    def usd_available(self, user):
        balance = self._balance(user)
        return balance.available if balance else None

    @admin.display(description="USD")
    def usd_balance_panel(self, user) -> str:
        balance = self._balance(user)
        if balance is None:
            return "No USD balance."
        return format_html(
            '<table id="usd-balance"><tr><th>current</th><th>held</th><th>available</th><th>updated</th></tr>'
            '<tr><td class="usd-current">{}</td><td class="usd-held">{}</td><td class="usd-available">{}</td>'
            "<td>{}</td></tr></table>"
            '<p><a href="{}">balance page</a> · <a href="{}">cash ledger</a></p>',
            balance.current_balance,
            balance.held,
            balance.available,
            balance.updated_at.isoformat(timespec="seconds"),
            reverse("admin:balances_usdbalance_change", args=[balance.pk]),
            admin_changelist_url("balances_cashtransaction", user=user.pk),
        )

    @admin.display(description="holdings")
    def holdings_panel(self, user) -> str:
        valued = value_holdings(get_holdings(user=user))
        ledger = admin_changelist_url("balances_assettransaction", user=user.pk)
        if not valued:
            return format_html('No holdings. <a href="{}">asset ledger</a>', ledger)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    v.holding.asset_id,
                    plain_decimal(v.holding.quantity),
                    plain_decimal(v.holding.held_quantity),
                    plain_decimal(v.holding.average_purchase_price),
                    plain_decimal(v.current_price) + (" (stale)" if v.price_stale else ""),
                    v.market_value if v.market_value is not None else "-",
                    v.unrealized_pnl if v.unrealized_pnl is not None else "-",
                )
                for v in valued
            ),
        )
        return format_html(
            '<table id="holdings"><tr><th>asset</th><th>quantity</th><th>held</th><th>average price</th>'
            "<th>current price</th><th>market value</th><th>unrealized P&amp;L</th></tr>{}</table>"
            '<p><a href="{}">asset ledger</a></p>',
            rows,
            ledger,
        )

    @admin.display(description="recent orders")
    def recent_orders_panel(self, user) -> str:
        orders = list(get_orders_by_user(user=user)[:RECENT_ORDERS])
        all_orders = admin_changelist_url("orders_order", user=user.pk)
        if not orders:
            return format_html('No orders. <a href="{}">orders</a>', all_orders)
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{} {}</td>'
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:orders_order_change", args=[order.pk]),
                    str(order.pk)[:8],
                    order.created_at.isoformat(timespec="seconds"),
                    order.order_type,
                    order.asset_id,
                    plain_decimal(order.quantity),
                    plain_decimal(order.order_price) if order.is_limit else "market",
                    order.status,
                    order.total_amount if order.total_amount is not None else "-",
                )
                for order in orders
            ),
        )
        return format_html(
            '<table id="recent-orders"><tr><th>order</th><th>created</th><th>side</th><th>quantity</th>'
            "<th>limit</th><th>status</th><th>total USD</th></tr>{}</table>"
            '<p><a href="{}">all orders</a></p>',
            rows,
            all_orders,
        )
