"""Hostile query values for the fuzz tests of both APIs (tests/portfolio_project/test_query_fuzz.py,
tests/alpaca_compat/test_query_fuzz.py): times at and past the ends of the calendar, with
offsets that carry them over, malformed and other scripts' digits; forged cursors and page
tokens around them; numbers no parser should take. Every one must be answered below 500."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bounded and deterministic: the same examples on every run, none stored between runs.
FUZZ_SETTINGS = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TIME_EDGES = [
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999-14:00",
    "9999-12-31",
    "0001-01-01",
    "0001-01-02",
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00+23:59",
    "0100-01-01T00:00:00Z",
    "0099-12-31T23:59:59Z",
    "9899-12-31T23:59:59.999999Z",
    "9900-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-02-30",
    "2026-13-01T00:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T23:59:60Z",
    "2026-03-02T12:00:00+24:00",
    "2026-W10-1",
    "20260302T120000Z",
    "2026-03-02T12:00:00.1234567890Z",
    "\u0662\u0660\u0662\u0666-03-02",
    "\uff12\uff10\uff12\uff16-03-02T00:00:00Z",
    "",
    " ",
]
ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=23, minutes=59))])
NUMBER_EDGES = [
    "0",
    "-1",
    "-0",
    "1e999",
    "1E3",
    "1_000",
    "\u0661\u0662",
    "\uff11",
    " 1",
    "1.5",
    "NaN",
    "Infinity",
    "0x10",
    "9" * 40,
    "-" + "9" * 400,
]


def times() -> st.SearchStrategy[str]:
    """Times in and out of range, as ISO 8601 would write them and as it would not; the edges
    of the calendar are drawn about a third of the time."""
    moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=OFFSETS)
    edges = st.sampled_from(TIME_EDGES)
    return st.one_of(
        edges,
        edges,
        moments.map(lambda moment: moment.isoformat()),
        moments.map(lambda moment: moment.isoformat(sep=" ")),
        st.dates().map(lambda day: day.isoformat()),
        moments.map(lambda moment: moment.isoformat().translate(ARABIC_INDIC)),
    )


# The ends of the calendar as each API's bar tokens write a time: ISO 8601 (/api/v1) and epoch
# seconds (/v1beta3).
FAR_ISO_STAMPS = ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"]
FAR_EPOCH_STAMPS = ["253402300799", "-62135596800"]
EPOCH_EDGES = ["253402300799", "-62135596800", "-62135596801", "253402300800", "0", "-1", "99999999999999"]


def epoch_seconds() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EPOCH_EDGES),
        st.integers(min_value=-(10**14), max_value=10**14).map(str),
        st.sampled_from(NUMBER_EDGES),
    )


def _b64(text: str, *, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode("utf-8", "surrogatepass")).decode()


def cursors() -> st.SearchStrategy[str]:
    """DRF's cursor shape (base64 of o, r and p) filled with anything, and plain junk."""
    parts = st.fixed_dictionaries(
        {},
        optional={
            "o": st.one_of(st.integers(min_value=-5, max_value=10**9).map(str), st.sampled_from(NUMBER_EDGES)),
            "r": st.sampled_from(["0", "1", "2", "", "\u0661"]),
            "p": st.one_of(times(), st.text(max_size=20), st.sampled_from(["BTC", "\x00", "A" * 300])),
        },
    )
    shaped = parts.map(lambda tokens: _b64("&".join(f"{key}={value}" for key, value in tokens.items())))
    forged = st.sampled_from(["cj0xJnA9AA==", _b64("p=\x00"), _b64("o=99999999&p=BTC"), "====", "cD1CVEM"])
    return st.one_of(forged, shaped, forged, st.text(max_size=40))


def page_tokens(*, epoch_first: bool = False) -> st.SearchStrategy[str]:
    """Both APIs' bar tokens (base64 of "asset|time" for /api/v1, of "asset|epoch seconds" for
    /v1beta3: ``epoch_first`` tries those first) and activity ids ("<20 digits>::<ledger><row>"),
    forged around the edges."""
    assets = st.sampled_from(["BTC", "ETH", "ZZZ", "", "BT C", "\x00", "btc"])
    stamps = FAR_EPOCH_STAMPS + FAR_ISO_STAMPS if epoch_first else FAR_ISO_STAMPS + FAR_EPOCH_STAMPS
    stamp = st.one_of(st.sampled_from(stamps), times(), epoch_seconds())
    bar = st.tuples(assets, stamp).map(lambda pair: _b64(f"{pair[0]}|{pair[1]}", urlsafe=True))
    activity = st.tuples(
        st.text(alphabet="0123456789\u0662", min_size=19, max_size=21),
        st.sampled_from(["A", "C", "X"]),
        st.integers(min_value=0, max_value=10**20),
    ).map(lambda parts: f"{parts[0]}::{parts[1]}{parts[2]}")
    far = st.sampled_from([_b64(f"BTC|{stamp}", urlsafe=True) for stamp in stamps])
    return st.one_of(far, bar, bar, activity, st.text(max_size=40))


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NUMBER_EDGES),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
    )


def hostile_values() -> st.SearchStrategy[str]:
    return st.one_of(times(), cursors(), page_tokens(), numbers(), st.text(max_size=30))


def values_for(
    name: str, *, kind: str | None = None, fmt: str | None = None, epoch_tokens: bool = False
) -> st.SearchStrategy[str]:
    """Hostile values for one parameter: mostly of its own kind (a time for a time, a token for
    a token, a number for a number), the rest anything hostile."""
    if fmt in ("date-time", "date") or name in ("after", "until", "start", "end", "date", "date_end"):
        own = times()
    elif name == "cursor":
        own = cursors()
    elif name == "page_token":
        own = page_tokens(epoch_first=epoch_tokens)
    elif kind in ("integer", "number") or name in ("limit", "page_size", "qty", "percentage"):
        own = numbers()
    else:
        return hostile_values()
    return st.one_of(own, own, own, hostile_values())
