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

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError


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
