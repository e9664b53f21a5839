"""Changelists that answer malformed input with a message, never a 500.

Two holes in Django's admin, found by probing every changelist:
- an action filters ``pk__in=<the posted _selected_action values>`` without parsing them
  first: ``abc`` for an integer id, a malformed UUID or a NUL byte raised ValueError or
  ValidationError;
- a date filter or the date hierarchy with a year like ``10**23`` or ``-1`` raises
  OverflowError or ValueError when the count query is compiled, past the point where Django
  turns a bad filter into its "incorrect lookup" answer.
Every ModelAdmin here includes ``SafeChangelistMixin``. A bad selection runs no action, and
Django sends the user back to the list with a message. A bad lookup gets Django's own
"?e=1" page for incorrect filters.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html

from core import replicas
from core.money import plain


class SafeChangelistMixin:
    def response_action(self, request, queryset):
        pk_field = self.model._meta.pk
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                if "\x00" in value:
                    raise ValidationError("NUL byte")
                pk_field.to_python(value)
            except (ValidationError, ValueError, TypeError):
                self.message_user(
                    request, "The selection is not valid; reload the list and select again.", messages.ERROR
                )
                return None  # Django redirects back to the changelist: nothing ran
        return super().response_action(request, queryset)

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except (OverflowError, ValueError) as exc:
            # The changelist's only input is the query string; Django itself treats a
            # ValueError while building the filters as an incorrect lookup.
            raise IncorrectLookupParameters(exc) from exc

    def changelist_view(self, request, extra_context=None):
        # Lists tolerate a little lag: a healthy replica may serve them (docs/DESIGN.md, "Scaling").
        return replicas.replica_ok(super().changelist_view)(request, extra_context)


# --- Generic helpers of the back office's pages ------------------------------------------


def admin_changelist_url(model_label: str, **params) -> str:
    """``admin_changelist_url("orders_order", user=3)`` -> the orders of user 3. By URL name,
    so a page may link to any app's list without importing it."""
    url = reverse(f"admin:{model_label}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def user_link(user_id: int, username: str) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:auth_user_change", args=[user_id]), username)


def admin_time(value: datetime | None) -> str:
    """A time as the back office writes every time, "2026-11-27 18:09:28 UTC": Django's
    DATETIME_FORMAT (core/formats/), so that a time a page writes by hand reads like the
    readonly fields and list columns Django writes; "-" for none, as Django's empty value."""
    return "-" if value is None else formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")


def plain_decimal(value: Decimal | None) -> str:
    """A decimal without its trailing zeros and never in exponent form (1E+1 -> "10")."""
    return "-" if value is None else plain(value)


def decimal_column(attribute: str, description: str, *, ordering: str | None = None):
    """A list column (a ModelAdmin method) writing ``obj.<attribute>`` with ``plain_decimal``:
    ``quantity_display = decimal_column("quantity", "quantity", ordering="quantity")``."""

    @admin.display(description=description, ordering=ordering)
    def column(self, obj) -> str:
        return plain_decimal(getattr(obj, attribute))

    return column


def user_column():
    """A list column (a ModelAdmin method): the row's user as a link to the user's page,
    sorted by username (list ``user`` in ``list_select_related``)."""

    @admin.display(description="user", ordering="user__username")
    def column(self, obj) -> str:
        return user_link(obj.user_id, obj.user.username)

    return column


class ReadOnlyMixin:
    """For a ModelAdmin or an inline: viewable with the view permission; never added,
    changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class UuidSearchMixin:
    """Search also finds rows by their UUID or any prefix of it (the lists show the first 8
    hex digits), with or without hyphens. A prefix is a range of UUIDs, so the lookup is a
    range scan of ``uuid_search_field``'s index, not an icontains over every UUID's text."""

    uuid_search_field = "pk"

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        bounds = uuid_prefix_range(search_term)
        if bounds is None:
            return results, may_have_duplicates
        low, high = bounds
        field = self.uuid_search_field
        return results | queryset.filter(**{f"{field}__gte": low, f"{field}__lte": high}), may_have_duplicates


HEX_DIGITS = frozenset("0123456789abcdef")


def uuid_prefix_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The lowest and highest UUID starting with ``text`` (hex digits, hyphens ignored), or
    None when it is not the start of a UUID. Four digits at least, so that a short word of
    hex letters ("bad", "cafe" is allowed) does not list a sixteenth of all rows."""
    digits = text.strip().lower().replace("-", "")
    if not 4 <= len(digits) <= 32 or not set(digits) <= HEX_DIGITS:
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
