"""Query-string filters shared by the API's lists."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from core.api.fields import canonical_choice


class _AnyCaseChoiceField(forms.ChoiceField):
    def to_python(self, value):
        value = super().to_python(value)
        return canonical_choice([choice for choice, _label in self.choices], value) if isinstance(value, str) else value


class EnumFilter(filters.ChoiceFilter):
    """One of a filter's choices, taken in any case (``?status=pending``, ``?kind=STOP``), like
    ``core.api.fields.EnumField`` in bodies; anything else is a 400."""

    field_class = _AnyCaseChoiceField


class _UtcDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError("This time is out of range.", code="invalid") from None


class TimestampFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC. PostgreSQL refuses offsets beyond +-15:59 that
    Python takes (``+21:33`` was a 500), and a naive time is read as UTC."""

    field_class = _UtcDateTimeField
