"""The classes REST_FRAMEWORK names as defaults: the JSON parser and the paginator.

Kept out of ``core.api.errors`` on purpose: DRF resolves REST_FRAMEWORK's class
paths lazily, and ``rest_framework.views`` reads DEFAULT_PARSER_CLASSES while it is being
imported. A module named in those settings must therefore never import DRF's views, or
whichever setting is resolved first in a process (Django runs system checks in no fixed
order) can meet a half-imported module.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pagination, newest first: a page costs the same on the millionth row as on
    the first, unlike OFFSET. The id breaks ties between rows of the same instant."""

    ordering = ("-created_at",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class DecimalJSONParser(JSONParser):
    """JSON with numbers parsed straight to Decimal (never through float, which would
    silently round 0.123456789012345678) and NaN/Infinity literals refused."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")
