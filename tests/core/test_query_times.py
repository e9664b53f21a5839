"""Times, dates and cursors in /api/v1 queries, read by one parser (core/api/times.py): ISO 8601
in ASCII digits, inside the range every endpoint can count from; anything else is a 400
naming the parameter, never an OverflowError or a DataError (a 500)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from core.api.times import EARLIEST, LATEST, LONGEST_WINDOW, InvalidTime, parse_day, parse_instant
from tests.support.api import error_code

OUT_OF_RANGE = "Out of range: times from 0100-01-01 to 9899-12-31 (UTC) are taken."


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-03-02T12:00:00Z", datetime(2026, 3, 2, 12, tzinfo=UTC)),
        ("2026-03-02t12:00:00z", datetime(2026, 3, 2, 12, tzinfo=UTC)),
        ("2026-03-02 12:00:00.123456+00:00", datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)),  # DRF's cursors
        ("2026-03-02T12:00:00.123456789-0530", datetime(2026, 3, 2, 17, 30, 0, 123456, tzinfo=UTC)),
        ("2026-03-02T12:00", datetime(2026, 3, 2, 12, tzinfo=UTC)),  # no offset: UTC
        ("2026-03-02", datetime(2026, 3, 2, tzinfo=UTC)),
        ("0385-04-19T02:04:56.2+21:33", datetime(385, 4, 18, 4, 31, 56, 200000, tzinfo=UTC)),
    ],
)
def test_times_in_iso_8601_are_read_in_utc(text, instant):
    assert parse_instant(text) == instant


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\u0662\u0660\u0662\u0666-03-02", "Not a time"),  # Arabic-Indic digits (Python's \d takes them)
        ("\uff12\uff10\uff12\uff16-03-02", "Not a time"),  # full-width
        ("2026-W10-1", "Not a time"),  # a week date (datetime.fromisoformat takes it)
        ("20260302T120000", "Not a time"),
        ("2026-03-02T12", "Not a time"),
        ("2026-03-02Z", "Not a time"),
        ("2026-02-30", "Not a time"),
        ("2026-03-02T24:00:00Z", "Not a time"),
        ("2026-03-02T23:59:60Z", "Not a time"),
        ("2026-03-02T12:00:00+24:00", "Not a time"),
        ("2026-03-02T12:00:00+05:60", "Not a time"),
        ("2026-03-02T12:00:00Z\n", "Not a time"),
        ("9999-12-31T23:59:59Z", "Out of range"),
        ("9900-01-01T00:00:00Z", "Out of range"),
        ("9899-12-31T23:00:00-01:00", "Out of range"),  # 9900 in UTC
        ("0001-01-01T00:00:00+05:00", "Out of range"),  # before year 1 in UTC
        ("0099-12-31T23:59:59.999999Z", "Out of range"),
    ],
)
def test_malformed_or_out_of_range_times_are_refused_with_a_reason(text, message):
    with pytest.raises(InvalidTime) as refused:
        parse_instant(text)
    assert str(refused.value).startswith(message)


def test_the_range_leaves_room_for_the_longest_window_any_endpoint_counts():
    # given the extremes a query may name
    earliest, latest = parse_instant("0100-01-01T00:00:00Z"), parse_instant("9899-12-31T23:59:59.999999Z")

    # then counting the longest window either way stays in Python's calendar
    assert (earliest, latest) == (EARLIEST, LATEST - timedelta(microseconds=1))
    assert (earliest - LONGEST_WINDOW).year == 72
    assert (latest + LONGEST_WINDOW).year == 9927
    assert timedelta(days=10_000) + timedelta(days=1) <= LONGEST_WINDOW  # 10,000 daily bars and a bucket


def test_dates_are_yyyy_mm_dd_in_ascii_digits_in_range():
    assert parse_day("2026-03-02") == date(2026, 3, 2)
    for text in ("2026-3-2", "2026-03-02T00:00:00Z", "\u0662\u0660\u0662\u0666-03-02", "9999-12-31", "0001-01-02"):
        with pytest.raises(InvalidTime):
            parse_day(text)


def test_a_time_with_an_offset_is_the_same_instant():
    assert parse_instant("2026-03-02T12:00:00+05:30") == datetime(2026, 3, 2, 12, tzinfo=timezone(timedelta(hours=5.5)))


# --- Every endpoint, through the one parser -------------------------------------------------


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("path", "query", "field", "message"),
    [
        # each of these was a 500 (OverflowError: date value out of range)
        ("/api/v1/portfolio/history/", {"date_end": "9999-12-31T23:59:59Z"}, "date_end", OUT_OF_RANGE),
        ("/api/v1/portfolio/history/", {"date_end": "0001-01-02"}, "date_end", OUT_OF_RANGE),
        ("/api/v1/portfolio/history/", {"date_end": "0100-01-01", "period": "1A"}, None, None),
        ("/api/v1/portfolio/history/", {"date_end": "9899-12-31T23:59:59Z", "period": "1D"}, None, None),
        ("/api/v1/market/bars/", {"page_token": _token("BTC|9999-12-31T23:59:59+00:00")}, "page_token", None),
        ("/api/v1/market/bars/", {"end": "0100-01-01T00:00:00Z", "timeframe": "1D", "limit": "10000"}, None, None),
        # malformed, and out of range
        ("/api/v1/market/bars/", {"start": "2026-W10-1"}, "start", "Not a time"),
        ("/api/v1/market/bars/", {"end": "9999-12-31"}, "end", OUT_OF_RANGE),
        ("/api/v1/market/bars/", {"page_token": _token("BTC|\u0662\u0660\u0662\u0666-03-02")}, "page_token", None),
        ("/api/v1/market/bars/", {"page_token": _token("BT C|2026-03-02T00:00:00+00:00")}, "page_token", None),
        ("/api/v1/market/bars/", {"limit": "1_000"}, "limit", "Write a whole number"),
        ("/api/v1/activities/", {"after": "9999-12-31T23:59:59Z"}, "after", OUT_OF_RANGE),
        ("/api/v1/activities/", {"until": "\uff12\uff10\uff12\uff16-01-01"}, "until", "Not a time"),
        ("/api/v1/activities/", {"page_token": "\u0662" * 20 + "::A1"}, "page_token", "Not an activity id"),
        ("/api/v1/activities/", {"page_size": "\u0661\u0660"}, "page_size", "Write a whole number"),
        ("/api/v1/orders/", {"after": "9999-12-31T23:59:59Z"}, "after", OUT_OF_RANGE),
        ("/api/v1/orders/", {"until": "2026-02-30T00:00:00Z"}, "until", "Not a time"),
    ],
)
def test_a_bad_time_in_a_query_is_a_400_naming_it_and_an_edge_of_the_range_is_answered(
    auth_client, btc, path, query, field, message
):
    # given
    params = {"asset_id": "BTC", "timeframe": "1D", **query} if "market" in path else query

    # when
    response = auth_client.get(path, params)

    # then
    if field is None:  # the extremes of the range: every window counted from them is in the calendar
        assert response.status_code == 200, response.content
        return
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]
    assert response.json()["error"]["details"][field][0].startswith(message or "Not a page token")


@pytest.mark.parametrize(
    "cursor",
    [
        "cj0xJnA9AA==",  # "r=1&p=\x00": a NUL byte, was a DataError (500) on the assets list
        base64.b64encode(b"p=BTC\x7f").decode(),
        base64.b64encode(b"p=" + b"A" * 201).decode(),
        base64.b64encode("p=\u00c9TH".encode()).decode(),
        "cD1CVEM",  # no padding
        "cD1CVEM=garbage",
    ],
)
def test_a_forged_assets_cursor_is_a_400_naming_the_cursor(auth_client, btc, cursor):
    # when
    response = auth_client.get("/api/v1/assets/", {"cursor": cursor})

    # then
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == ["cursor"]


def test_the_assets_list_still_pages_with_its_own_cursors(auth_client, make_asset):
    # given three assets, two a page
    for asset_id in ("AAA", "BBB", "CCC"):
        make_asset(asset_id)
    first = auth_client.get("/api/v1/assets/", {"page_size": 2}).json()

    # when
    second = auth_client.get(first["next"]).json()
    back = auth_client.get(second["previous"]).json()

    # then
    assert [a["asset_id"] for a in first["results"] + second["results"]] == ["AAA", "BBB", "CCC"]
    assert [a["asset_id"] for a in back["results"]] == ["AAA", "BBB"]
