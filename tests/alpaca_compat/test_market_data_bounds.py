"""Market data is open without a key, and no request of it can slow anyone else: a page of
bars does only what its ``limit`` needs (at most ``limit`` buckets of time from its first
recorded price and BARS_MAX_RECORDS prices), never the range it names, and an anonymous
caller has a tight rate of its own (THROTTLE_ANON_MARKET_RATE per client address)."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assets.models import Asset
from assets.selectors import BARS_MAX_RECORDS
from tests.support.price_records import T0, record, record_series

BARS = "/v1beta3/crypto/us/bars"
SYMBOLS = [f"C{k:02d}" for k in range(22)]
CENTURY = {"timeframe": "1Day", "start": "2000-01-01", "end": "2100-01-01"}


@pytest.fixture
def recorded_since_2000(db):
    """22 assets, each with a price a day from 2000-01-01 to 2025-12-01 (209k rows), the
    history a century-long request for all of them reads."""
    Asset.objects.bulk_create(
        [Asset(asset_id=a, name=a, coingecko_id=a.lower(), reference_price=Decimal(100)) for a in SYMBOLS]
    )
    record_series(
        SYMBOLS,
        start=datetime(2000, 1, 1, tzinfo=UTC),
        end=datetime(2025, 12, 1, tzinfo=UTC),
        step=timedelta(days=1),
    )
    return SYMBOLS


def records_read(queries: list[dict]) -> int:
    """How many recorded prices the captured statements read, by PostgreSQL's own count
    (EXPLAIN ANALYZE of each statement again: the rows its scans of assets_pricerecord
    returned, over all their loops)."""

    def scanned(node: dict) -> int:
        own = node["Actual Rows"] * node["Actual Loops"] if node.get("Relation Name") == "assets_pricerecord" else 0
        return own + sum(scanned(child) for child in node.get("Plans", []))

    total = 0
    with connection.cursor() as cursor:
        for query in queries:
            if "assets_pricerecord" in query["sql"]:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
                plan = cursor.fetchone()[0]
                total += scanned((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    return total


def test_anonymous_bars_of_22_symbols_over_a_century_answer_in_a_page_that_reads_what_its_limit_needs(
    api_client, recorded_since_2000
):
    # given no key, and a request that once aggregated all 209k rows in its range (0.6-2 s)
    params = {"symbols": ",".join(f"{a}/USD" for a in recorded_since_2000), **CENTURY}

    # when
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            response = api_client.get(BARS, params)
        timings.append(time.perf_counter() - started)

    # then a page of the default limit (1000 days of C00), and a token that goes on
    body = response.json()
    assert response.status_code == 200
    assert list(body["bars"]) == ["C00/USD"]
    assert len(body["bars"]["C00/USD"]) == 1000
    assert body["bars"]["C00/USD"][-1]["t"] == "2002-09-26T00:00:00Z"
    assert body["next_page_token"] is not None
    # it read the prices of 1000 days (and one probe for the first), not 209k
    assert records_read(captured.captured_queries) == 1001
    assert statistics.median(timings) < 0.3, timings


def test_the_longest_page_reads_at_most_limit_buckets_of_prices(api_client, recorded_since_2000):
    # given the largest limit Alpaca allows
    params = {"symbols": ",".join(f"{a}/USD" for a in recorded_since_2000), **CENTURY, "limit": 10_000}

    # when
    with CaptureQueriesContext(connection) as captured:
        body = api_client.get(BARS, params).json()

    # then C00's whole history (9466 days) and no more: the page's 10,000 days of time end in
    # 2027, inside the range named; C01 is the next page's
    assert list(body["bars"]) == ["C00/USD"]
    assert len(body["bars"]["C00/USD"]) == 9466
    assert records_read(captured.captured_queries) == 9466 + 1
    assert body["next_page_token"] is not None


def test_api_v1_bars_are_bounded_by_their_limit_the_same_way(auth_client, recorded_since_2000):
    # given the same century-long request through /api/v1 (the same selector)
    params = {"asset_id": ",".join(recorded_since_2000), "timeframe": "1D", "start": "2000-01-01", "end": "2100-01-01"}

    # when
    with CaptureQueriesContext(connection) as captured:
        response = auth_client.get("/api/v1/market/bars/", params)

    # then
    assert response.status_code == 200
    assert len(response.json()["bars"]) == 1000
    assert records_read(captured.captured_queries) == 1001
    assert response.json()["next_page_token"] is not None


@pytest.mark.parametrize(("timeframe", "limit"), [("1Min", 1), ("1Min", 3), ("5Min", 2), ("1H", 4), ("1Day", 1)])
def test_following_the_pages_gives_every_bar_once_as_one_aggregate_of_the_range_would(
    market_data, btc, eth, make_asset, timeframe, limit
):
    # given irregular prices of three assets around T0, one of them with none in the range
    make_asset("SOL")
    for minutes, price in [(0, "100"), (1, "103"), (2, "99"), (7, "101"), (65, "110"), (66, "108"), (1500, "90")]:
        record(btc, price, T0 + timedelta(minutes=minutes, seconds=5))
    for minutes, price in [(3, "2500"), (4, "2510"), (60, "2490"), (61, "2495"), (62, "2501")]:
        record(eth, price, T0 + timedelta(minutes=minutes, seconds=30))
    step = {"1Min": timedelta(minutes=1), "5Min": timedelta(minutes=5), "1H": timedelta(hours=1)}.get(
        timeframe, timedelta(days=1)
    )
    query = {"symbols": "SOL/USD,ETH/USD,BTC/USD", "timeframe": timeframe, "start": T0.isoformat(), "limit": limit}
    query["end"] = (T0 + timedelta(days=2)).isoformat()

    # when every page is followed
    pages, token, seen = 0, None, []
    while True:
        body = market_data.get("/crypto/us/bars", {**query, **({"page_token": token} if token else {})})
        pages += 1
        seen += [
            (symbol, bar["t"], bar["o"], bar["h"], bar["l"], bar["c"], bar["n"])
            for symbol, bars in body["bars"].items()
            for bar in bars
        ]
        assert sum(len(bars) for bars in body["bars"].values()) <= limit
        token = body["next_page_token"]
        if token is None:
            break

    # then the bars are those of one aggregate over the whole range, by symbol then time
    expected = []
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT asset_id, date_bin(%s, as_of, '2000-01-01'), (array_agg(price ORDER BY as_of))[1], max(price),
                      min(price), (array_agg(price ORDER BY as_of DESC))[1], count(*)
               FROM assets_pricerecord GROUP BY 1, 2 ORDER BY 1, 2""",
            [step],
        )
        for asset_id, bucket, *ohlc, count in cursor.fetchall():
            stamp = bucket.astimezone(UTC).isoformat().replace("+00:00", "Z")
            expected.append((f"{asset_id}/USD", stamp, *(float(value) for value in ohlc), count))
    assert seen == expected
    assert pages < 60


def test_a_page_reads_at_most_bars_max_records_and_never_returns_part_of_a_bar(api_client, btc):
    # given a price a minute for 75 days: 108,000 prices, more than a page reads
    record_series(
        ["BTC"],
        start=datetime(2025, 1, 1, tzinfo=UTC),
        end=datetime(2025, 3, 17, tzinfo=UTC),
        step=timedelta(minutes=1),
    )
    params = {"symbols": "BTC/USD", "timeframe": "1Day", "start": "2025-01-01", "end": "2026-01-01", "limit": 10_000}

    # when the first page is asked, then the rest
    with CaptureQueriesContext(connection) as captured:
        first = api_client.get(BARS, params).json()
    read = records_read(captured.captured_queries)  # before the next request clears Django's log
    rest = api_client.get(BARS, {**params, "page_token": first["next_page_token"]}).json()

    # then the first page holds the 69 whole days its 100,000 prices cover (the 70th was cut
    # short and is the next page's first), and no bar is partial
    assert read == BARS_MAX_RECORDS + 1
    assert [bar["n"] for bar in first["bars"]["BTC/USD"]] == [1440] * 69
    assert [bar["n"] for bar in rest["bars"]["BTC/USD"]] == [1440] * 6
    assert rest["bars"]["BTC/USD"][0]["t"] == "2025-03-11T00:00:00Z"
    assert rest["next_page_token"] is None


def test_an_anonymous_caller_has_its_own_tight_rate_and_a_key_is_not_counted_in_it(
    api_client, credentials, btc, monkeypatch
):
    # given 3 anonymous requests a minute per address, within a window that does not turn
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, "anon_market": "3/min"}
    )
    monkeypatch.setattr(SimpleRateThrottle, "timer", staticmethod(lambda: 1_800_000_030.0))
    query = {"symbols": "BTC/USD", "timeframe": "1Day"}
    key_id, secret = credentials

    # when
    anonymous = [api_client.get(BARS, query) for _ in range(4)]
    keyed = api_client.get(BARS, query, HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)

    # then
    assert [r.status_code for r in anonymous] == [200, 200, 200, 429]
    assert anonymous[3].json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert (anonymous[0]["X-RateLimit-Limit"], anonymous[0]["X-RateLimit-Remaining"]) == ("3", "2")
    assert anonymous[3]["Retry-After"] == "30"
    assert keyed.status_code == 200
    assert keyed["X-RateLimit-Limit"] == SimpleRateThrottle.THROTTLE_RATES["user"].split("/")[0]
