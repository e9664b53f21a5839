"""Accepted prices are announced on price_events for the market data streams."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from assets.price_events import PRICE_EVENTS, PriceEvent, announce_prices
from assets.prices import Quote, get_quotes
from tests.support.processes import own_session

pytestmark = pytest.mark.django_db(transaction=True)

AS_OF = datetime(2026, 11, 27, 17, 52, 5, tzinfo=UTC)


@pytest.fixture
def listener():
    conn = own_session(autocommit=True)
    conn.execute(f"LISTEN {PRICE_EVENTS}")
    yield conn
    conn.close()


def test_accepted_quotes_are_announced_in_order_with_bid_and_ask_at_the_price(listener):
    # given
    quotes = [
        Quote(asset_id="BTC", price=Decimal("63389.300000000000"), as_of=AS_OF, source="simulated"),
        Quote(asset_id="ETH", price=Decimal("2481.07"), as_of=AS_OF, source="coingecko"),
    ]
    # when
    announce_prices(quotes)
    # then
    assert [json.loads(n.payload) for n in listener.notifies(timeout=0.5)] == [
        {
            "asset_id": "BTC",
            "price": "63389.3",
            "bid": "63389.3",
            "ask": "63389.3",
            "as_of": "2026-11-27T17:52:05.000000Z",
            "source": "simulated",
        },
        {
            "asset_id": "ETH",
            "price": "2481.07",
            "bid": "2481.07",
            "ask": "2481.07",
            "as_of": "2026-11-27T17:52:05.000000Z",
            "source": "coingecko",
        },
    ]


def test_a_price_announced_in_a_rolled_back_transaction_never_leaves(listener):
    # given
    quote = Quote(asset_id="BTC", price=Decimal("1"), as_of=AS_OF, source="simulated")

    def announce_then_fail() -> None:
        with transaction.atomic():
            announce_prices([quote])
            raise RuntimeError("rolled back")

    # when
    with pytest.raises(RuntimeError):
        announce_then_fail()
    # then
    assert list(listener.notifies(timeout=0.3)) == []


def test_a_price_event_round_trips_through_json():
    # given
    event = PriceEvent.of(Quote(asset_id="BTC", price=Decimal("0.000000000001"), as_of=AS_OF, source="simulated"))
    # when
    parsed = PriceEvent.from_json(event.to_json())
    # then
    assert parsed == event
    assert json.loads(event.to_json())["price"] == "0.000000000001"


def test_announcing_no_quotes_sends_nothing(listener, django_assert_num_queries):
    with django_assert_num_queries(0):
        announce_prices([])
    assert list(listener.notifies(timeout=0.2)) == []


def test_the_providers_same_quote_asked_again_is_announced_once_and_a_new_one_again(
    listener, btc, coingecko_server, settings
):
    # given: the provider asked on every read (as a processor's pass asks it twice)
    settings.PRICE_CACHE_SECONDS = 0
    first, second = int(time.time()) - 20, int(time.time()) - 5
    coingecko_server.set_price("bitcoin", "50000", updated_at=first)
    # when
    get_quotes([btc])
    get_quotes([btc])
    coingecko_server.set_price("bitcoin", "50100", updated_at=second)
    get_quotes([btc])
    # then
    announced = [PriceEvent.from_json(n.payload) for n in listener.notifies(timeout=0.5)]
    assert [(a.price, int(a.as_of.timestamp())) for a in announced] == [
        (Decimal("50000"), first),
        (Decimal("50100"), second),
    ]
