"""Admin actions only ever see well-formed selections.

Django's changelist filters ``pk__in=<the posted _selected_action values>`` without checking
them first: ``abc`` for an integer id, a malformed UUID or a NUL byte raised ValueError,
ValidationError or DataError, a 500. Every ModelAdmin here includes this mixin, which
checks each value with the primary key's own parsing first. A bad selection runs no
action: Django sends the user back to the list with the message below.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError


class ValidSelectionMixin:
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
