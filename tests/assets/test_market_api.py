"""Market data over HTTP: latest prices and OHLC bars from the recorded history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.validation import OrderRequest
from tests.support.api import error_code
from tests.support.price_records import T0, record

LATEST = "/api/v1/market/latest/"
BARS = "/api/v1/market/bars/"


def test_latest_gives_each_assets_last_recorded_price(auth_client, btc_minutes, eth, make_asset):
    # given ETH recorded once; SOL never
    record(eth, "2481.070000000000", T0 + timedelta(seconds=5))
    make_asset("SOL")

    # when
    response = auth_client.get(LATEST, {"asset_id": "eth,BTC,SOL"})

    # then in the order asked, prices without trailing zeros; SOL has none to give
    assert response.status_code == 200
    assert response.json() == {
        "prices": [
            {
                "asset_id": "ETH",
                "price": "2481.07",
                "bid": "2481.07",
                "ask": "2481.07",
                "as_of": "2026-03-02T12:00:05Z",
                "source": "test",
            },
            {
                "asset_id": "BTC",
                "price": "107.5",
                "bid": "107.5",
                "ask": "107.5",
                "as_of": "2026-03-02T12:10:00Z",
                "source": "test",
            },
        ]
    }


def test_latest_agrees_with_the_asset_and_the_trade_just_made(auth_client, user, btc, coingecko_server):
    from orders.services import place_order

    # given: BTC fetched at 12:00:05 (the minute's recorded price), then at 12:00:20
    coingecko_server.set_price("bitcoin", "67000", updated_at=int(T0.timestamp()) + 5)
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        auth_client.get("/api/v1/assets/BTC/")
    coingecko_server.set_price("bitcoin", "67100", updated_at=int(T0.timestamp()) + 20)

    # when: a market buy at 12:00:20, then the asset and the latest price
    with time_machine.travel(T0 + timedelta(seconds=20), tick=False):
        order = place_order(
            user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"))
        ).order
        asset = auth_client.get("/api/v1/assets/BTC/").json()
        latest = auth_client.get(LATEST, {"asset_id": "BTC"}).json()

    # then: all three say 67100 as of 12:00:20 (the history still has 12:00:05 for the minute)
    assert order.executed_price == Decimal("67100")
    assert (asset["current_price"], asset["price_as_of"]) == ("67100", "2026-03-02T12:00:20Z")
    assert latest == {
        "prices": [
            {
                "asset_id": "BTC",
                "price": "67100",
                "bid": "67100",
                "ask": "67100",
                "as_of": "2026-03-02T12:00:20Z",
                "source": "coingecko",
            }
        ]
    }


@pytest.mark.parametrize("asset_ids", ["BTC", "BTC,ETH"])
def test_latest_costs_three_queries_for_any_number_of_assets(auth_client, btc_minutes, eth, asset_ids):
    # given
    record(eth, "2500", T0)

    # when
    with CaptureQueriesContext(connection) as captured:
        response = auth_client.get(LATEST, {"asset_id": asset_ids})

    # then the token, the asset ids checked, the prices
    assert response.status_code == 200
    assert len(response.json()["prices"]) == len(asset_ids.split(","))
    assert len(captured.captured_queries) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "asset_id"),
        ({"asset_id": ""}, "asset_id"),
        ({"asset_id": ",,"}, "asset_id"),
        ({"asset_id": "BTC,NOPE"}, "asset_id"),
        ({"asset_id": ",".join(f"A{i}" for i in range(101))}, "asset_id"),
    ],
)
def test_latest_refuses_bad_asset_ids(auth_client, btc, params, field):
    response = auth_client.get(LATEST, params)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert list(response.json()["error"]["details"]) == [field]


def test_market_data_needs_authentication(api_client, btc):
    for path in (LATEST, BARS):
        response = api_client.get(path, {"asset_id": "BTC", "timeframe": "1Min"})
        assert response.status_code == 401
        assert error_code(response) == "not_authenticated"


def test_bars_give_ohlc_and_count_per_bucket(auth_client, btc_minutes):
    # when
    response = auth_client.get(
        BARS, {"asset_id": "BTC", "timeframe": "5Min", "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T12:15:00Z"}
    )

    # then
    assert response.status_code == 200
    assert response.json() == {
        "timeframe": "5Min",
        "start": "2026-03-02T12:00:00Z",
        "end": "2026-03-02T12:15:00Z",
        "bars": [
            {
                "asset_id": "BTC",
                "timestamp": "2026-03-02T12:00:00Z",
                "open": "100",
                "high": "103",
                "low": "99",
                "close": "101",
                "count": 4,
            },
            {
                "asset_id": "BTC",
                "timestamp": "2026-03-02T12:05:00Z",
                "open": "110",
                "high": "110",
                "low": "108",
                "close": "108",
                "count": 2,
            },
            {
                "asset_id": "BTC",
                "timestamp": "2026-03-02T12:10:00Z",
                "open": "107.5",
                "high": "107.5",
                "low": "107.5",
                "close": "107.5",
                "count": 1,
            },
        ],
        "next_page_token": None,
    }


def test_bars_start_inclusive_end_exclusive_and_buckets_aligned_to_the_timeframe(auth_client, btc_minutes):
    # when the range cuts into the first and last five minutes
    response = auth_client.get(
        BARS, {"asset_id": "BTC", "timeframe": "5Min", "start": "2026-03-02T12:01:00Z", "end": "2026-03-02T12:09:00Z"}
    )

    # then the 12:00 bar opens at 12:01's price, and 12:09 is left out of the 12:05 bar
    bars = [(b["timestamp"][11:16], b["open"], b["close"], b["count"]) for b in response.json()["bars"]]
    assert bars == [("12:00", "103", "101", 3), ("12:05", "110", "110", 1)]


def test_bars_page_through_assets_and_time_with_page_tokens(auth_client, btc_minutes, eth):
    # given
    record(eth, "2500", T0 + timedelta(minutes=1))
    record(eth, "2510", T0 + timedelta(minutes=7))
    query = {"asset_id": "ETH,BTC", "timeframe": "5Min", "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T13:00:00Z"}

    # when pages of two are followed
    seen, token, pages = [], None, 0
    while True:
        body = auth_client.get(BARS, {**query, "limit": 2, **({"page_token": token} if token else {})}).json()
        seen += [(b["asset_id"], b["timestamp"][11:16], b["close"]) for b in body["bars"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break

    # then every bar once, by asset then time; a page covers at most limit buckets of time
    # (BTC 12:10-12:20 is a page of one bar), so there is a page more than bars / limit
    assert pages == 4
    assert seen == [
        ("BTC", "12:00", "101"),
        ("BTC", "12:05", "108"),
        ("BTC", "12:10", "107.5"),
        ("ETH", "12:00", "2500"),
        ("ETH", "12:05", "2510"),
    ]


def test_bars_default_to_the_last_limit_buckets_before_now(auth_client, btc):
    # given prices now and two hours ago
    from django.utils import timezone

    now = timezone.now()
    record(btc, "1", now - timedelta(hours=2))
    record(btc, "2", now - timedelta(seconds=1))

    # when
    body = auth_client.get(BARS, {"asset_id": "BTC", "timeframe": "1Min", "limit": 60}).json()

    # then
    assert [b["close"] for b in body["bars"]] == ["2"]


def test_bars_are_a_query_per_asset_after_authentication(auth_client, btc_minutes, eth):
    with CaptureQueriesContext(connection) as captured:
        response = auth_client.get(BARS, {"asset_id": "BTC,ETH", "timeframe": "1D", "start": "2026-03-01T00:00:00Z"})
    assert response.status_code == 200
    assert [b["count"] for b in response.json()["bars"]] == [7]
    assert len(captured.captured_queries) == 4  # token, asset ids, the bars of each asset the page reaches


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"timeframe": "2Min"}, "timeframe"),
        ({"timeframe": ""}, "timeframe"),
        ({}, "timeframe"),
        ({"timeframe": "1Min", "start": "yesterday"}, "start"),
        ({"timeframe": "1Min", "end": "2026-13-01T00:00:00Z"}, "end"),
        ({"timeframe": "1Min", "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T12:00:00Z"}, "start"),
        ({"timeframe": "1Min", "start": "2026-03-02T13:00:00Z", "end": "2026-03-02T12:00:00Z"}, "start"),
        ({"timeframe": "1D", "end": "0001-01-02T00:00:00Z"}, "end"),
        ({"timeframe": "1Min", "limit": "0"}, "limit"),
        ({"timeframe": "1Min", "limit": "10001"}, "limit"),
        ({"timeframe": "1Min", "page_token": "not-a-token"}, "page_token"),
        ({"timeframe": "1Min", "page_token": "QlRDfG5vdC1hLWRhdGU="}, "page_token"),
        ({"timeframe": "1Min", "symbols": "BTC"}, "symbols"),
    ],
)
def test_bars_refuse_bad_input_in_the_error_shape(auth_client, btc, params, field):
    response = auth_client.get(BARS, {"asset_id": "BTC", **params})
    assert response.status_code == 400
    assert error_code(response) == ("unknown_field" if field == "symbols" else "validation_error")
    assert field in response.json()["error"]["details"]


def test_latest_and_assets_show_the_deployments_spread_around_the_price(auth_client, btc, set_price, settings):
    # given a 10 bps spread for the deployment
    settings.FILL_SPREAD_BPS = Decimal("10")
    set_price("BTC", "50000")

    # when
    latest = auth_client.get(LATEST, {"asset_id": "BTC"}).json()["prices"][0]
    asset = auth_client.get("/api/v1/assets/BTC/").json()

    # then: bid and ask half the spread either side of the mid
    assert (latest["price"], latest["bid"], latest["ask"]) == ("50000", "49975", "50025")
    assert (asset["current_price"], asset["bid"], asset["ask"]) == ("50000", "49975", "50025")
