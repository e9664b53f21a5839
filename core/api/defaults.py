"""The classes REST_FRAMEWORK names as defaults: the JSON parser and the paginator.

Kept out of ``core.api.errors`` on purpose: DRF resolves REST_FRAMEWORK's class
paths lazily, and ``rest_framework.views`` reads DEFAULT_PARSER_CLASSES while it is being
imported. A module named in those settings must therefore never import DRF's views, or
whichever setting is resolved first in a process (Django runs system checks in no fixed
order) can meet a half-imported module.
"""

from __future__ import annotations

import json
from datetime import UTC
from decimal import Decimal

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pagination, newest first: a page costs the same on the millionth row as on
    the first, unlike OFFSET. The id breaks ties between rows of the same instant."""

    ordering = ("-created_at",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request):
        """DRF checks a cursor's shape but not its position, which went into the query as
        given: a forged one, or one borrowed from the assets list (a symbol), was a 500.
        A position must be a timestamp, as this class's cursors carry."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not _is_timestamp(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor


class DecimalJSONParser(JSONParser):
    """JSON with numbers parsed straight to Decimal (never through float, which would
    silently round 0.123456789012345678), and NaN/Infinity literals and exponents (``1e5``)
    refused: numbers in input are plain decimals (SPEC section 10), as strings are
    (``core.api.fields``). JSON's grammar already allows only ASCII digits."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            return json.loads(text, parse_float=_plain_decimal, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _plain_decimal(literal: str) -> Decimal:
    if "e" in literal or "E" in literal:
        raise ValueError(f"{literal} has an exponent; write numbers as plain decimals")
    return Decimal(literal)


def _is_timestamp(text: str) -> bool:
    try:
        value = parse_datetime(text)
        # Aware, and in range once in UTC (year 9999 at +14:00 is not).
        return value is not None and value.tzinfo is not None and value.astimezone(UTC) is not None
    except (ValueError, OverflowError):
        return False
