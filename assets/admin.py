"""Back office for the asset inventory (README, "Back office (Django admin)"): operators add and edit assets and
switch trading on and off; everyone with access sees the current market price."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from assets.models import Asset
from assets.prices import Quote, get_quotes
from assets.services import set_tradable
from core.admin import SafeChangelistMixin, admin_time, decimal_column, plain_decimal


class QuotedChangeList(ChangeList):
    """A changelist that prices the assets of the page it shows with one ``get_quotes``
    call (one cache read, at most one provider request), whatever the page size."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        asset_of = self.model_admin.asset_of
        assets = {}
        for obj in self.result_list:
            asset = asset_of(obj)
            assets[asset.asset_id] = asset
        quotes = get_quotes(assets.values())
        for obj in self.result_list:
            obj.admin_quote = quotes.get(asset_of(obj).asset_id)


class QuotedListMixin:
    """For a ModelAdmin whose rows each have an asset: adds a ``current_price`` column.
    ``asset_of`` must not query (use ``list_select_related``)."""

    @staticmethod
    def asset_of(obj) -> Asset:
        return obj.asset

    def get_changelist(self, request: HttpRequest, **kwargs):
        return QuotedChangeList

    @staticmethod
    def quote_of(obj) -> Quote | None:
        return getattr(obj, "admin_quote", None)

    @admin.display(description="current price (USD)")
    def current_price(self, obj) -> str:
        quote = self.quote_of(obj)
        if quote is None:
            return "unavailable"
        title = f"{quote.source}, as of {admin_time(quote.as_of)}"
        if quote.stale:
            return format_html('<span title="{}">{} <strong>(stale)</strong></span>', title, plain_decimal(quote.price))
        return format_html('<span title="{}">{}</span>', title, plain_decimal(quote.price))


@admin.register(Asset)
class AssetAdmin(SafeChangelistMixin, QuotedListMixin, admin.ModelAdmin):
    list_display = (
        "asset_id",
        "name",
        "is_active",
        "current_price",
        "reference_price_display",
        "quantity_decimals",
        "coingecko_id",
        "updated_at",
    )
    list_display_links = ("asset_id", "name")
    list_filter = ("is_active",)
    search_fields = ("asset_id", "name", "coingecko_id")
    ordering = ("asset_id",)
    actions = ("make_tradable", "suspend_trading")
    fields = (
        "asset_id",
        "name",
        "is_active",
        "quantity_decimals",
        "coingecko_id",
        "reference_price",
        "daily_volatility",
        "created_at",
        "updated_at",
    )

    @staticmethod
    def asset_of(obj: Asset) -> Asset:
        return obj

    def get_readonly_fields(self, request, obj=None):
        # The symbol is the primary key that orders and ledgers point at: fixed once created.
        if obj is not None:
            return ("asset_id", "created_at", "updated_at")
        return ("created_at", "updated_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        # Assets are referenced by orders and ledgers (PROTECT); retire one by suspending it.
        return False

    reference_price_display = decimal_column("reference_price", "reference price", ordering="reference_price")

    def _set_active(self, request, queryset: QuerySet[Asset], *, active: bool) -> None:
        changed = set_tradable(asset_ids=list(queryset.values_list("pk", flat=True)), active=active)
        for asset in queryset.filter(pk__in=changed):
            self.log_change(request, asset, [{"changed": {"fields": ["is_active"]}}])
        state = "tradable" if active else "suspended"
        if changed:
            self.message_user(request, f"{', '.join(changed)} now {state}.", messages.SUCCESS)
        else:
            self.message_user(request, f"Nothing to change: the selected assets were already {state}.", messages.INFO)

    @admin.action(description="Make selected assets tradable", permissions=["change"])
    def make_tradable(self, request, queryset):
        self._set_active(request, queryset, active=True)

    @admin.action(description="Suspend trading of selected assets", permissions=["change"])
    def suspend_trading(self, request, queryset):
        self._set_active(request, queryset, active=False)
