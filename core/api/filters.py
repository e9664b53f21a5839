"""Query-string filters shared by the API's lists."""

from __future__ import annotations

from django import forms
from django_filters import rest_framework as filters


class _UpperChoiceField(forms.ChoiceField):
    def to_python(self, value):
        value = super().to_python(value)
        return value.upper() if isinstance(value, str) else value


class EnumFilter(filters.ChoiceFilter):
    """One of a TextChoices' upper-case values, taken in any case (``?status=pending``), like
    ``core.api.fields.EnumField`` in bodies; anything else is a 400."""

    field_class = _UpperChoiceField
