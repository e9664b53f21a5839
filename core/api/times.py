"""Dates and times in queries, read strictly, in one place for every API (docs/DESIGN.md, "Input").

A time in a query (``?after=``, ``?date_end=``, the instant inside a cursor or a page token)
is ISO 8601 / RFC 3339 written with ASCII digits: ``2026-03-02T12:00:00Z``, an offset
(``+05:30``, ``+0530``), a space for the ``T``, up to nine fractional digits (kept to the
microsecond), or a bare date (``2026-03-02``, midnight). Without an offset it is UTC. Python's
and Django's own parsers take more: Arabic-Indic or full-width digits (``\\d`` without
``re.ASCII``), week dates, and every year from 1 to 9999.

The years are what made 500s: an endpoint counts back a period or a page of buckets from the
time it is given, or forward a bucket, and ``date_end=9999-12-31`` or ``0001-01-02`` then fell
off the end of Python's calendar (OverflowError). Taking only times at least ``LONGEST_WINDOW``
inside that calendar makes every window any endpoint computes around a time it was given
representable, so no endpoint needs a guard of its own: out of that range is a 400, as a
malformed time is. Each API answers the ``InvalidTime`` raised here in its own error shape.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

# The longest span an endpoint computes from a time it was given: market bars count 10,000
# daily buckets back from ``end`` (their default start) or ahead of ``start`` (one page), plus
# a bucket; portfolio history a year and a bucket; activities a day.
LONGEST_WINDOW = timedelta(days=10_001)
EARLIEST = datetime(100, 1, 1, tzinfo=UTC)
LATEST = datetime(9900, 1, 1, tzinfo=UTC)  # exclusive
assert EARLIEST - datetime.min.replace(tzinfo=UTC) > LONGEST_WINDOW
assert datetime.max.replace(tzinfo=UTC) - LATEST > LONGEST_WINDOW

MALFORMED = "Not a time: write ISO 8601 with ASCII digits, e.g. 2026-03-02T12:00:00Z (or a date, 2026-03-02)."
MALFORMED_DATE = "Not a date: write YYYY-MM-DD with ASCII digits, e.g. 2026-03-02."
OUT_OF_RANGE = (
    f"Out of range: times from {EARLIEST.date().isoformat()} to {(LATEST - timedelta(days=1)).date().isoformat()} "
    "(UTC) are taken."
)

_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_INSTANT = re.compile(
    _DATE + r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:[Zz]|([+-])(\d{2}):?(\d{2}))?)?\Z",
    re.ASCII,
)
_DAY = re.compile(_DATE + r"\Z", re.ASCII)
_EPOCH_SECONDS = re.compile(r"-?\d{1,12}", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidTime(ValueError):
    """A time or date that is malformed or out of range; ``str()`` says which, for the client."""


def parse_instant(text: str) -> datetime:
    """The aware UTC instant ``text`` names; raises InvalidTime."""
    match = _INSTANT.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidTime(MALFORMED)
    year, month, day, hour, minute, second, fraction, sign, offset_hours, offset_minutes = match.groups()
    offset = UTC
    if sign:
        delta = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        if int(offset_minutes) > 59 or delta >= timedelta(hours=24):
            raise InvalidTime(MALFORMED)
        offset = timezone(-delta if sign == "-" else delta)
    try:
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=offset,
        )
        instant = local.astimezone(UTC)
    except ValueError:  # month 13, day 32, hour 24, second 60
        raise InvalidTime(MALFORMED) from None
    except OverflowError:  # year 1 or 9999 carried past the calendar's end by its offset
        raise InvalidTime(OUT_OF_RANGE) from None
    return in_range(instant)


def parse_day(text: str) -> date:
    """The calendar date ``text`` names (``YYYY-MM-DD``); raises InvalidTime. Its midnight
    (UTC) must be in range, as any instant."""
    match = _DAY.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidTime(MALFORMED_DATE)
    try:
        day = date(*(int(part) for part in match.groups()))
    except ValueError:
        raise InvalidTime(MALFORMED_DATE) from None
    in_range(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return day


def in_range(instant: datetime) -> datetime:
    """``instant`` when it lies in [EARLIEST, LATEST); raises InvalidTime otherwise. For
    instants made otherwise than by parsing (a page token's epoch seconds)."""
    if not EARLIEST <= instant < LATEST:
        raise InvalidTime(OUT_OF_RANGE)
    return instant


def from_epoch_seconds(text: str) -> datetime:
    """The instant of a whole number of seconds since 1970 written in ASCII digits (optionally
    signed), in range; raises InvalidTime."""
    if not isinstance(text, str) or _EPOCH_SECONDS.fullmatch(text) is None:
        raise InvalidTime(MALFORMED)
    try:
        instant = _EPOCH + timedelta(seconds=int(text))
    except OverflowError:
        raise InvalidTime(OUT_OF_RANGE) from None
    return in_range(instant)
