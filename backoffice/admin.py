"""The back office's pages that see several apps at once (docs/DESIGN.md, "What each app owns"): Django's
user admin with the user's money (USD balance, holdings at market price, recent orders), and
Django's group and DRF's token admins with the changelist guard. They import orders,
balances and assets, so they live above them, in a module of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from accounts.admin import ApiKeyInline, KeepApiKeysPasswordChangeForm
from accounts.selectors import username_taken
from backoffice.forms import FillModelForm
from balances.admin import ADJUST_PERMISSION
from balances.equity_chart import equity_chart_svg
from balances.forms import AccountResetForm
from balances.models import AccountReset, UsdBalance
from balances.selectors import get_holdings, value_holdings
from balances.services import USERNAME_INDEXES
from core.admin import SafeChangelistMixin, admin_changelist_url, admin_time, plain_decimal
from core.exceptions import Conflict, DomainError
from core.sql import violated_constraint
from orders.models import Order
from orders.selectors import get_account_fill_model, get_orders_by_user
from orders.services import reset_account, set_account_fill_model

RECENT_ORDERS = 10
RECENT_RESETS = 5
RESET_PERMISSION = "balances.reset_account"
FILL_MODEL_PERMISSION = "orders.change_accountfillmodel"

User = get_user_model()

# --- Users ----------------------------------------------------------------------------

# The app list on every page's left took 300 of a 1,400 px screen, and the order and asset
# lists' right-hand columns (status, prices) were cut off behind a scroll bar. The home
# page and the breadcrumbs still lead everywhere.
admin.site.enable_nav_sidebar = False

admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class ApiTokenAdmin(SafeChangelistMixin, TokenAdmin):
    """DRF's token admin, with malformed selections and lookups answered, not a 500."""

    def has_add_permission(self, request, obj=None) -> bool:
        # Tokens are bound to the password when issued (accounts/tokens.py); one drawn here by
        # DRF's model would never authenticate. Deleting one here still revokes it.
        return False


@admin.register(Group)
class StaffGroupAdmin(SafeChangelistMixin, GroupAdmin):
    """Django's group admin, with malformed selections and lookups answered, not a 500."""


class CaseInsensitiveUsernameChangeForm(UserChangeForm):
    """Django's change form refuses a username taken in another case, as its add form does:
    usernames are unique in any case (accounts/migrations/0003), and the index's refusal would
    otherwise surface as a 500 when a user is renamed."""

    def clean_username(self):
        username = self.cleaned_data.get("username")
        if username and username_taken(username=username, excluding=self.instance):
            raise forms.ValidationError("A user with that username already exists.", code="unique")
        return username


@admin.register(User)
class PortfolioUserAdmin(SafeChangelistMixin, UserAdmin):
    """Django's user admin plus the user's money on one page: USD balance, holdings at
    market price and recent orders, read-only, with links to the ledgers."""

    form = CaseInsensitiveUsernameChangeForm
    change_form_template = "admin/auth/user/change_form.html"
    # The password form says whether the user's API keys end with the old password.
    change_password_form = KeepApiKeysPasswordChangeForm
    change_user_password_template = "admin/auth/user/change_password_keep_keys.html"
    inlines = (ApiKeyInline,)  # the user's API keys, read-only; revoked from the API keys list
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
    money_fields = (
        "usd_balance_panel",
        "holdings_panel",
        "equity_chart_panel",
        "recent_orders_panel",
        "resets_panel",
        "fill_model_panel",
    )
    readonly_fields = money_fields
    fieldsets = (
        UserAdmin.fieldsets[0],
        ("Money", {"fields": money_fields}),
        *UserAdmin.fieldsets[1:],
    )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # Support views users without changing them: the password hash tells them nothing, and
        # its "Reset password" button led to a 403.
        (name, options), *rest = fieldsets
        fields = tuple(field for field in options["fields"] if field != "password")
        return ((name, {**options, "fields": fields}), *rest)

    def get_inlines(self, request, obj):
        # Not on the "add user" page: a new user has no keys, and the form would expect the inline's data.
        return self.inlines if obj is not None else ()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form's name check reads committed rows only: another rename or add of the same
        # name in another case, committed while this save waited on the index behind it,
        # passes the check and breaks the index. Run once more, the check sees that name
        # and the page says "already exists", where the IntegrityError was a 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except IntegrityError as error:
            if violated_constraint(error) not in USERNAME_INDEXES:
                raise
        return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        balance_id = None
        if str(object_id).isdigit():  # a malformed id is left to Django's "does not exist" handling
            balance_id = UsdBalance.objects.filter(user_id=object_id).values_list("pk", flat=True).first()
        extra_context = {
            **(extra_context or {}),
            "can_adjust": request.user.has_perm(ADJUST_PERMISSION),
            "can_reset": request.user.has_perm(RESET_PERMISSION),
            "can_set_fill_model": request.user.has_perm(FILL_MODEL_PERMISSION),
            "usd_balance_id": balance_id,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- resetting the paper account (Operations) ---

    def get_urls(self):
        return [
            path(
                "<path:object_id>/fill-model/",
                self.admin_site.admin_view(self.fill_model_view),
                name="auth_user_fill_model",
            ),
            path(
                "<path:object_id>/reset-account/",
                self.admin_site.admin_view(self.reset_account_view),
                name="auth_user_reset_account",
            ),
            *super().get_urls(),
        ]

    def reset_account_view(self, request: HttpRequest, object_id: str):
        """The reset form of a user's paper account; on a valid submit, the reset (through
        ``orders.services.reset_account``, the staff member as its actor) and back to the
        user's page. The form's one-time key is the reset's client_reference: a second submit
        of one form resets once."""
        if not request.user.has_perm(RESET_PERMISSION):
            raise PermissionDenied
        user = self.get_object(request, object_id)  # None for a malformed or unknown id
        if user is None:
            raise Http404("No such user.")
        form = AccountResetForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                result = reset_account(
                    user=user,
                    cash=data["cash"],
                    client_reference=data["submission_key"],
                    actor=request.user,
                    reason=data["reason"],
                )
            except Conflict:
                self.message_user(
                    request,
                    "That form was already used for a reset to another amount, so nothing was changed. "
                    "Check the user's resets, then fill in this new form.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(request.get_full_path())
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self._reset_done(request, user, result)
                return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        return self._account_page(
            request,
            user,
            "admin/auth/user/reset_account.html",
            title=f"Reset the paper account of {user.username}",
            form=form,
            balance=self._balance(user),
            holdings=get_holdings(user=user),
            open_orders=Order.objects.filter(user=user, status=Order.Status.PENDING).count(),
        )

    def fill_model_view(self, request: HttpRequest, object_id: str):
        """The form of a user's fill model (docs/DESIGN.md, "Fill model"): a profile, or each
        parameter; saved through ``orders.services.set_account_fill_model`` with the staff
        member as its actor. Operations only."""
        if not request.user.has_perm(FILL_MODEL_PERMISSION):
            raise PermissionDenied
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such user.")
        params, row = get_account_fill_model(user_id=user.pk)
        form = FillModelForm(request.POST if request.method == "POST" else None, initial=params.as_dict())
        if form.is_valid():
            data = dict(form.cleaned_data)
            profile = data.pop("profile") or None
            try:
                saved = set_account_fill_model(
                    user=user, actor=request.user, **({"profile": profile} if profile else data)
                )
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"{user.username}'s orders now fill under the {saved.profile} model.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        return self._account_page(
            request,
            user,
            "admin/auth/user/fill_model.html",
            title=f"Fill model of {user.username}",
            form=form,
            current_profile=params.profile,
            is_default=row is None,
        )

    def _account_page(self, request: HttpRequest, user, template: str, *, title: str, form, **extra):
        """A page of one action on ``user``'s account (templates/admin/account_action.html)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "account": user,
            "user_url": reverse("admin:auth_user_change", args=[user.pk]),
            **extra,
        }
        return TemplateResponse(request, template, context)

    @admin.display(description="fill model")
    def fill_model_panel(self, user) -> str:
        params, row = get_account_fill_model(user_id=user.pk)
        return format_html(
            '<p id="fill-model"><strong>{}</strong>{}: spread {} bps, slippage {}, participation {}, '
            "maker {} / taker {} bps, seed {}</p>",
            params.profile,
            " (the deployment's default)" if row is None else "",
            plain_decimal(params.spread_bps),
            params.slippage,
            plain_decimal(params.fill_participation) if params.fill_participation is not None else "whole fills",
            plain_decimal(params.maker_fee_bps),
            plain_decimal(params.taker_fee_bps),
            params.seed,
        )

    def _reset_done(self, request: HttpRequest, user, result) -> None:
        reset = result.reset
        if not result.created:
            self.message_user(
                request,
                f"This form was already submitted: the reset of {admin_time(reset.created_at)} is recorded once "
                "and nothing more was changed.",
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            f"Reset {user.username}'s account to {reset.cash} USD. Open orders cancelled: "
            f"{len(reset.cancelled_orders)}; holdings taken out: {len(reset.positions)}.",
            messages.SUCCESS,
        )

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
            admin_time(balance.updated_at),
            reverse("admin:balances_usdbalance_change", args=[balance.pk]),
            admin_changelist_url("balances_cashtransaction", user=user.pk),
        )

    @admin.display(description="equity")
    def equity_chart_panel(self, user) -> str:
        return equity_chart_svg(user=user)

    @admin.display(description="holdings")
    def holdings_panel(self, user) -> str:
        valued = value_holdings(get_holdings(user=user))
        return panel_table(
            "holdings",
            ["asset", "quantity", "held", "average price", "current price", "market value", "unrealized P&L"],
            [
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
            ],
            none="No holdings.",
            link=("asset ledger", admin_changelist_url("balances_assettransaction", user=user.pk)),
        )

    @admin.display(description="account resets")
    def resets_panel(self, user) -> str:
        return _resets_panel(user)

    @admin.display(description="recent orders")
    def recent_orders_panel(self, user) -> str:
        orders = get_orders_by_user(user=user)[:RECENT_ORDERS]
        return panel_table(
            "recent-orders",
            ["order", "created", "side", "kind", "quantity", "limit price", "stop price", "status", "total USD"],
            [
                (
                    format_html(
                        '<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[order.pk]), str(order.pk)[:8]
                    ),
                    admin_time(order.created_at),
                    f"{order.order_type} {order.asset_id}",
                    order.kind,
                    plain_decimal(order.quantity),
                    plain_decimal(order.order_price),
                    plain_decimal(order.stop_price),
                    order.status,
                    order.total_amount if order.total_amount is not None else "-",
                )
                for order in orders
            ],
            none="No orders.",
            link=("all orders", admin_changelist_url("orders_order", user=user.pk)),
        )


def _resets_panel(user) -> str:
    resets = AccountReset.objects.filter(user=user).select_related("actor")[:RECENT_RESETS]
    return panel_table(
        "account-resets",
        ["reset", "cash", "orders cancelled", "holdings taken out", "by staff", "reason"],
        [
            (
                admin_time(reset.created_at),
                reset.cash,
                len(reset.cancelled_orders),
                ", ".join(f"{p['quantity']} {p['asset_id']}" for p in reset.positions) or "-",
                reset.actor.username if reset.actor_id else "-",
                reset.reason or "-",
            )
            for reset in resets
        ],
        none="Never reset.",
        link=("all resets", admin_changelist_url("balances_accountreset", user=user.pk)),
    )


def panel_table(
    table_id: str, headers: Sequence[str], rows: Sequence[Sequence], *, none: str, link: tuple[str, str]
) -> str:
    """A table of the user's page: a header row, then a row each, every cell escaped (pass
    ``format_html`` output for a link), then ``link`` (its text and URL) to the whole list;
    without rows, ``none`` and the link."""
    text, url = link
    if not rows:
        return format_html('{} <a href="{}">{}</a>', none, url, text)
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html(
        '<table id="{}"><tr>{}</tr>{}</table><p><a href="{}">{}</a></p>', table_id, head, body, url, text
    )
