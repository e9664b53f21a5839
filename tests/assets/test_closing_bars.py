"""The bars the market data streams publish when a minute closes: one query for every asset."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from assets.selectors import Bar, get_closing_bars
from tests.support.price_records import record

pytestmark = pytest.mark.django_db

END = datetime(2026, 3, 2, 12, 5, tzinfo=UTC)


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


def test_the_last_two_minutes_and_the_day_so_far_of_every_asset_are_one_query(btc, eth, django_assert_num_queries):
    # given
    record(btc, "90", datetime(2026, 3, 1, 23, 59, tzinfo=UTC))  # yesterday: in no bar
    record(btc, "100", datetime(2026, 3, 2, 0, 1, tzinfo=UTC))
    record(btc, "101", datetime(2026, 3, 2, 12, 3, 5, tzinfo=UTC))
    record(btc, "103", datetime(2026, 3, 2, 12, 4, 5, tzinfo=UTC))
    record(btc, "99", datetime(2026, 3, 2, 12, 4, 55, tzinfo=UTC))
    record(btc, "120", END)  # the next minute: in no bar yet
    record(eth, "2500", datetime(2026, 3, 2, 12, 4, 30, tzinfo=UTC))
    # when
    with django_assert_num_queries(1):
        minutes, days = get_closing_bars(end=END)
    # then
    d = Decimal
    assert minutes == [
        Bar("BTC", at(12, 3), d("101"), d("101"), d("101"), d("101"), 1),
        Bar("BTC", at(12, 4), d("103"), d("103"), d("99"), d("99"), 2),
        Bar("ETH", at(12, 4), d("2500"), d("2500"), d("2500"), d("2500"), 1),
    ]
    assert days == [
        Bar("BTC", at(0, 0), d("100"), d("103"), d("99"), d("99"), 4),
        Bar("ETH", at(0, 0), d("2500"), d("2500"), d("2500"), d("2500"), 1),
    ]


def test_only_the_assets_asked_for_and_none_when_none_are_asked(btc, eth, django_assert_num_queries):
    # given
    record(btc, "103", datetime(2026, 3, 2, 12, 4, 5, tzinfo=UTC))
    record(eth, "2500", datetime(2026, 3, 2, 12, 4, 30, tzinfo=UTC))
    # when
    minutes, _ = get_closing_bars(end=END, asset_ids=["ETH"])
    with django_assert_num_queries(0):
        nothing = get_closing_bars(end=END, asset_ids=[])
    # then
    assert [bar.asset_id for bar in minutes] == ["ETH"]
    assert nothing == ([], [])
