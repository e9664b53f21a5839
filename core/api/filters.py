"""Query-string filters shared by the API's lists."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from core.api.fields import canonical_choice
from core.api.times import InvalidTime, parse_instant


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
        if value in self.empty_values:
            return None
        try:
            return parse_instant(value)
        except InvalidTime as error:
            raise ValidationError(str(error), code="invalid") from None


class TimestampFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 time, read by ``core.api.times.parse_instant`` and compared in UTC.
    PostgreSQL refuses offsets beyond +-15:59 that Python takes (``+21:33`` was a 500), and a
    naive time is read as UTC."""

    field_class = _UtcDateTimeField
