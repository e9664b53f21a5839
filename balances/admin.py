"""Back office for balances and the ledgers (README, "Back office (Django admin)").

Balances and ledger rows are never edited here, by anybody (superusers included): the
ledger is append-only and must explain every balance. The one way to change a balance
from the back office is an adjustment (``adjust_usd_view`` / ``adjust_asset_view``), which
goes through ``balances.services`` and writes an ADJUSTMENT row with the reason and the
staff user. The user page (with holdings and orders) is backoffice/admin.py, above both apps.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from assets.admin import QuotedListMixin
from balances.forms import AssetAdjustmentForm, UsdAdjustmentForm
from balances.models import AccountReset, AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.selectors import get_holdings, value_holding
from balances.services import adjust_asset_balance, adjust_usd_balance
from core.admin import (
    ReadOnlyMixin,
    SafeChangelistMixin,
    UuidSearchMixin,
    admin_changelist_url,
    admin_time,
    decimal_column,
    plain_decimal,
    user_column,
)
from core.api.csv_export import spreadsheet_safe
from core.exceptions import Conflict, DomainError

ADJUST_PERMISSION = "balances.adjust_balance"

User = get_user_model()


# --- Links between the back-office pages ---------------------------------------------


def order_link(order_id) -> str:
    if order_id is None:
        return "-"
    # By URL name, not by import: balances must not import the orders app.
    return format_html('<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[order_id]), str(order_id)[:8])


# --- CSV export ------------------------------------------------------------------------


def csv_text(value: str | None) -> str:
    """Free text for a CSV cell that spreadsheets will not run as a formula."""
    return spreadsheet_safe(value or "")


def csv_number(value: Decimal | None) -> str:
    return "" if value is None else str(value)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(filename: str, header: list[str], rows: Iterable[list[str]]) -> StreamingHttpResponse:
    """Stream the rows, so an export of the whole ledger never sits in memory."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Read-only bases ----------------------------------------------------------------


class ReadOnlyAdmin(ReadOnlyMixin, SafeChangelistMixin, admin.ModelAdmin):
    """Viewable with the model's view permission; never added, changed or deleted here."""


def csv_column(model, name: str) -> tuple[str, Callable]:
    """The CSV header and cell of one of a ledger's detail fields, by the field's kind: who
    (user, staff actor) by username, other relations by id, decimals exactly, times in ISO
    8601, and free text guarded against spreadsheet formulas."""
    field = model._meta.get_field(name)
    if field.is_relation and field.related_model is User:
        return ("username" if name == "user" else name), lambda row: csv_text(_username(getattr(row, name)))
    if field.is_relation:
        return field.attname, lambda row: str(getattr(row, field.attname) or "")
    if isinstance(field, models.DecimalField):
        return name, lambda row: csv_number(getattr(row, name))
    if isinstance(field, models.DateTimeField):
        return name, lambda row: getattr(row, name).isoformat()
    if isinstance(field, models.CharField | models.TextField) and not field.choices:
        return name, lambda row: csv_text(getattr(row, name))
    return name, lambda row: str(getattr(row, name))


class LedgerAdmin(UuidSearchMixin, ReadOnlyAdmin):
    """A read-only ledger whose CSV export has the columns of its detail page (``fields``),
    so a column added to one is in the other."""

    uuid_search_field = "order_id"  # a ledger row is found by the order it settles

    date_hierarchy = "created_at"
    actions = ("export_csv",)
    list_per_page = 50

    @admin.action(description="Export selected rows as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        columns = [csv_column(self.model, name) for name in self.fields]
        people = [
            name for name in self.fields if getattr(self.model._meta.get_field(name), "related_model", None) is User
        ]
        header = [name for name, _ in columns]
        rows = (
            [to_cell(row) for _, to_cell in columns]
            for row in queryset.select_related(*people).order_by("created_at", "id").iterator(2000)
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        return csv_response(f"{self.model._meta.model_name}-{stamp}.csv", header, rows)

    user_display = user_column()

    @admin.display(description="created", ordering="created_at")
    def created_display(self, obj) -> str:
        return admin_time(obj.created_at)

    @admin.display(description="type", ordering="transaction_type")
    def type_display(self, obj) -> str:
        return obj.get_transaction_type_display()

    @admin.display(description="order")
    def order_display(self, obj) -> str:
        return order_link(obj.order_id)

    @admin.display(description="by staff", ordering="actor__username")
    def actor_display(self, obj) -> str:
        return obj.actor.username if obj.actor_id else "-"


def _username(user) -> str:
    return user.username if user is not None else ""


@admin.register(CashTransaction)
class CashTransactionAdmin(LedgerAdmin):
    list_display = (
        "id",
        "created_display",
        "user_display",
        "type_display",
        "amount",
        "balance_after",
        "order_display",
        "client_reference",
        "actor_display",
        "note",
    )
    list_select_related = ("user", "actor")
    list_filter = ("transaction_type", "created_at")
    search_fields = ("user__username", "client_reference", "note")
    fields = (
        "id",
        "created_at",
        "user",
        "transaction_type",
        "amount",
        "balance_after",
        "order",
        "client_reference",
        "note",
        "actor",
    )
    readonly_fields = fields


@admin.register(AssetTransaction)
class AssetTransactionAdmin(LedgerAdmin):
    list_display = (
        "id",
        "created_display",
        "user_display",
        "asset_display",
        "type_display",
        "quantity_display",
        "price_display",
        "total_amount",
        "realized_pnl",
        "order_display",
        "actor_display",
        "note",
    )
    list_select_related = ("user", "actor")
    list_filter = ("transaction_type", "status", "asset", "price_source", "created_at")
    search_fields = ("user__username", "client_reference", "note")
    fields = (
        "id",
        "created_at",
        "user",
        "asset",
        "transaction_type",
        "quantity",
        "price_per_unit",
        "total_amount",
        "realized_pnl",
        "status",
        "price_source",
        "order",
        "client_reference",
        "note",
        "actor",
    )
    readonly_fields = fields

    @admin.display(description="asset", ordering="asset_id")
    def asset_display(self, obj) -> str:
        return obj.asset_id

    # Status and price source are filters, not columns: every row written is COMPLETED.
    quantity_display = decimal_column("quantity", "quantity", ordering="quantity")

    price_display = decimal_column("price_per_unit", "price", ordering="price_per_unit")


# --- Account resets --------------------------------------------------------------


@admin.register(AccountReset)
class AccountResetAdmin(ReadOnlyAdmin):
    """Every reset of a paper account, read-only. Operations reset an account from the user's
    page (backoffice), which goes through ``orders.services.reset_account``."""

    list_display = (
        "id",
        "created_display",
        "user_display",
        "cash",
        "cash_change",
        "orders_cancelled",
        "positions_display",
        "actor_display",
        "client_reference",
        "reason",
    )
    list_select_related = ("user", "actor", "cash_transaction")
    list_filter = ("created_at",)
    search_fields = ("user__username", "client_reference", "reason")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "created_at",
        "user",
        "cash",
        "cash_transaction",
        "cancelled_orders",
        "positions",
        "client_reference",
        "actor",
        "reason",
    )
    readonly_fields = fields

    user_display = user_column()

    @admin.display(description="reset", ordering="created_at")
    def created_display(self, obj: AccountReset) -> str:
        return admin_time(obj.created_at)

    @admin.display(description="cash change (USD)")
    def cash_change(self, obj: AccountReset) -> Decimal:
        return obj.cash_transaction.amount

    @admin.display(description="orders cancelled")
    def orders_cancelled(self, obj: AccountReset) -> int:
        return len(obj.cancelled_orders)

    @admin.display(description="holdings taken out")
    def positions_display(self, obj: AccountReset) -> str:
        return ", ".join(f"{p['quantity']} {p['asset_id']}" for p in obj.positions) or "-"

    @admin.display(description="by staff", ordering="actor__username")
    def actor_display(self, obj: AccountReset) -> str:
        return obj.actor.username if obj.actor_id else "-"


# --- Balances -----------------------------------------------------------------------


@admin.register(AssetBalance)
class AssetBalanceAdmin(QuotedListMixin, ReadOnlyAdmin):
    list_display = (
        "user_display",
        "asset_display",
        "quantity_display",
        "held_display",
        "available_display",
        "average_price_display",
        "current_price",
        "market_value",
        "last_transaction_at",
    )
    list_display_links = ("asset_display",)  # not the user column, itself a link to the user
    list_select_related = ("user", "asset")
    list_filter = ("asset",)
    search_fields = ("user__username",)
    ordering = ("user__username", "asset_id")
    fields = (
        "user",
        "asset",
        "quantity",
        "held_quantity",
        "average_purchase_price",
        "total_bought",
        "total_sold",
        "last_transaction_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    user_display = user_column()

    @admin.display(description="asset", ordering="asset_id")
    def asset_display(self, obj: AssetBalance) -> str:
        return obj.asset_id

    quantity_display = decimal_column("quantity", "quantity", ordering="quantity")

    held_display = decimal_column("held_quantity", "held", ordering="held_quantity")

    available_display = decimal_column("available_quantity", "available")

    average_price_display = decimal_column("average_purchase_price", "average price", ordering="average_purchase_price")

    @admin.display(description="market value (USD)")
    def market_value(self, obj: AssetBalance) -> str:
        market_value = value_holding(obj, self.quote_of(obj)).market_value
        return "-" if market_value is None else str(market_value)


@admin.register(UsdBalance)
class UsdBalanceAdmin(ReadOnlyAdmin):
    list_display = ("user_display", "current_balance", "held", "available", "updated_at")
    # The first column is a link to the user; a row link around it would be an empty anchor.
    list_display_links = ("current_balance",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email")
    ordering = ("user__username",)
    fields = ("user", "current_balance", "held", "available", "created_at", "updated_at", "ledger_links")
    readonly_fields = fields
    change_form_template = "admin/balances/usdbalance/change_form.html"

    user_display = user_column()

    @admin.display(description="available")
    def available(self, obj: UsdBalance) -> Decimal:
        return obj.available

    @admin.display(description="history")
    def ledger_links(self, obj: UsdBalance) -> str:
        return format_html(
            '<a href="{}">cash ledger</a> · <a href="{}">asset ledger</a> · <a href="{}">orders</a>',
            admin_changelist_url("balances_cashtransaction", user=obj.user_id),
            admin_changelist_url("balances_assettransaction", user=obj.user_id),
            admin_changelist_url("orders_order", user=obj.user_id),
        )

    # --- adjustments ---

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/adjust/usd/",
                self.admin_site.admin_view(self.adjust_usd_view),
                name="{}_{}_adjust_usd".format(*info),
            ),
            path(
                "<path:object_id>/adjust/asset/",
                self.admin_site.admin_view(self.adjust_asset_view),
                name="{}_{}_adjust_asset".format(*info),
            ),
            *super().get_urls(),
        ]

    @staticmethod
    def has_adjust_permission(request: HttpRequest) -> bool:
        return request.user.has_perm(ADJUST_PERMISSION)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_adjust": self.has_adjust_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _balance_to_adjust(self, request: HttpRequest, object_id: str) -> UsdBalance:
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        balance = self.get_object(request, object_id)  # None for a malformed or unknown id
        if balance is None:
            raise Http404("No such USD balance.")
        return balance

    def adjust_usd_view(self, request: HttpRequest, object_id: str):
        balance = self._balance_to_adjust(request, object_id)
        form = UsdAdjustmentForm(request.POST if request.method == "POST" else None)

        def adjust(data: dict):
            return adjust_usd_balance(
                user=balance.user,
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
                client_reference=data["submission_key"],
            )

        def adjusted(movement) -> str:
            return (
                f"Adjusted {balance.user.username}'s USD by {form.cleaned_data['amount']:+}; balance now "
                f"{movement.balance.current_balance} (available {movement.balance.available})."
            )

        return self._adjustment_page(
            request, balance, form, adjust, adjusted, title=f"Adjust USD of {balance.user.username}"
        )

    def adjust_asset_view(self, request: HttpRequest, object_id: str):
        balance = self._balance_to_adjust(request, object_id)
        initial = {"asset": request.GET.get("asset")} if request.method == "GET" else None
        form = AssetAdjustmentForm(request.POST if request.method == "POST" else None, initial=initial)

        def adjust(data: dict):
            return adjust_asset_balance(
                user=balance.user,
                asset=data["asset"],
                quantity=data["quantity"],
                reason=data["reason"],
                actor=request.user,
                client_reference=data["submission_key"],
            )

        def adjusted(movement) -> str:
            data = form.cleaned_data
            return f"Adjusted {balance.user.username}'s {data['asset'].asset_id} by {plain_decimal(data['quantity'])}."

        return self._adjustment_page(
            request, balance, form, adjust, adjusted, title=f"Adjust a holding of {balance.user.username}"
        )

    def _adjustment_page(self, request: HttpRequest, balance: UsdBalance, form, adjust, adjusted, *, title: str):
        """The form again (with its errors, or a service's refusal as a message), or, once
        ``adjust(cleaned_data)`` applied or replayed it, back to the user's page."""
        if form.is_valid():
            try:
                movement = adjust(form.cleaned_data)
            except Conflict:
                return self._form_already_used(request)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                if movement.created:
                    self.message_user(request, adjusted(movement), messages.SUCCESS)
                else:
                    self._already_recorded(request, movement.transaction)
                return HttpResponseRedirect(reverse("admin:auth_user_change", args=[balance.user_id]))
        return self._render_adjustment(request, balance, form, title=title)

    def _already_recorded(self, request: HttpRequest, row) -> None:
        self.message_user(
            request,
            f"This form was already submitted: the adjustment of {admin_time(row.created_at)} is "
            "recorded once and nothing more was changed.",
            messages.WARNING,
        )

    def _form_already_used(self, request: HttpRequest) -> HttpResponseRedirect:
        # The key of an applied adjustment came back with other values (the browser's back
        # button, then an edit): nothing is written, and a fresh form gets a new key.
        self.message_user(
            request,
            "That form was already used for a different adjustment, so nothing was changed. "
            "Check the user's ledger, then enter the adjustment again in this new form.",
            messages.ERROR,
        )
        return HttpResponseRedirect(request.get_full_path())

    def _render_adjustment(self, request: HttpRequest, balance: UsdBalance, form, *, title: str):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "account": balance.user,
            "balance": balance,
            "holdings": get_holdings(user=balance.user),
            "user_url": reverse("admin:auth_user_change", args=[balance.user_id]),
        }
        return TemplateResponse(request, "admin/balances/usdbalance/adjust.html", context)
