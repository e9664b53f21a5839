"""The classes REST_FRAMEWORK names as defaults: the JSON parser and the paginator.

Kept out of ``core.api.errors`` on purpose: DRF resolves REST_FRAMEWORK's class
paths lazily, and ``rest_framework.views`` reads DEFAULT_PARSER_CLASSES while it is being
imported. A module named in those settings must therefore never import DRF's views, or
whichever setting is resolved first in a process (Django runs system checks in no fixed
order) can meet a half-imported module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal
from urllib import parse

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.parsers import JSONParser

from core.api.times import InvalidTime, parse_instant


class StrictCursorPagination(CursorPagination):
    """Cursor pagination whose cursors are read strictly: DRF checks a cursor's shape loosely
    (any ``int()``, any text) and puts its position into the query as given, so a forged one
    carrying a NUL byte (``?cursor=cj0xJnA9AA==``) was a DataError, one borrowed from another
    list a 500. A cursor is exactly what ``encode_cursor`` writes: base64 of ``o``, ``r`` and
    ``p``, each at most once, an offset and a direction in ASCII digits, a position this
    list's ordering can hold (``position_is_valid``). Anything else is a 400 naming
    ``cursor``, as every malformed query value is."""

    invalid_cursor_message = "Not a cursor this list gave: follow the next and previous links as they are."

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        cursor = _read_cursor(encoded, offset_cutoff=self.offset_cutoff)
        if cursor is None or (cursor.position is not None and not self.position_is_valid(cursor.position)):
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    def position_is_valid(self, position: str) -> bool:
        """A text column's value (an asset id): printable ASCII, no longer than a key."""
        return _PRINTABLE_POSITION.fullmatch(position) is not None


class NewestFirstCursorPagination(StrictCursorPagination):
    """Cursor pagination, newest first: a page costs the same on the millionth row as on
    the first, unlike OFFSET. The id breaks ties between rows of the same instant."""

    ordering = ("-created_at",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def position_is_valid(self, position: str) -> bool:
        # The position is a created_at as DRF writes it (str() of a datetime in UTC, as the
        # database gives them), read by the one parser of times in queries (range included).
        if not position.endswith("+00:00"):
            return False
        try:
            parse_instant(position)
        except InvalidTime:
            return False
        return True


_CURSOR = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z", re.ASCII)
_CURSOR_FIELDS = {"o", "r", "p"}
_PRINTABLE_POSITION = re.compile(r"[\x20-\x7e]{1,200}", re.ASCII)


def _read_cursor(encoded: str, *, offset_cutoff: int) -> Cursor | None:
    """The Cursor ``encoded`` holds, or None when it is not one ``encode_cursor`` could write."""
    if len(encoded) > 1000 or _CURSOR.match(encoded) is None:
        return None
    try:
        querystring = base64.b64decode(encoded, validate=True).decode("ascii")
        pairs = parse.parse_qsl(querystring, keep_blank_values=True, strict_parsing=bool(querystring))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    tokens = dict(pairs)
    if len(tokens) != len(pairs) or not tokens.keys() <= _CURSOR_FIELDS:
        return None
    offset, reverse = tokens.get("o", "0"), tokens.get("r", "0")
    if not (offset.isascii() and offset.isdigit() and len(offset) <= 6) or reverse not in ("0", "1"):
        return None
    return Cursor(offset=min(int(offset), offset_cutoff), reverse=reverse == "1", position=tokens.get("p"))


class DecimalJSONParser(JSONParser):
    """JSON with numbers parsed straight to Decimal (never through float, which would
    silently round 0.123456789012345678), and NaN/Infinity literals and exponents (``1e5``)
    refused: numbers in input are plain decimals (docs/DESIGN.md, "Input"), as strings are
    (``core.api.fields``). JSON's grammar already allows only ASCII digits."""

    @staticmethod
    def read_number(literal: str) -> Decimal:
        """A JSON number with a point or an exponent (integers are ints already)."""
        return _plain_decimal(literal)

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            return json.loads(text, parse_float=self.read_number, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _plain_decimal(literal: str) -> Decimal:
    if "e" in literal or "E" in literal:
        raise ValueError(f"{literal} has an exponent; write numbers as plain decimals")
    return Decimal(literal)
