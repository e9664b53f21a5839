"""Each quote carries its minute's volume: the simulated market's, or CoinGecko's day volume a
minute (docs/DESIGN.md, "Fill model")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import time_machine

from assets.price_providers import SimulatedProvider
from assets.prices import get_quotes

pytest_plugins = ["tests.support.price_server"]

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_the_simulated_market_trades_about_its_minute_volume_the_same_in_every_run(btc, settings):
    # given
    settings.SIMULATED_MINUTE_USD_VOLUME = Decimal("500000")
    minute = int(T0.timestamp()) // 60

    # when
    volumes = [SimulatedProvider.minute_volume("BTC", minute + i, price=Decimal("50000")) for i in range(60)]

    # then: between 5 and 15 BTC a minute at 50,000, varying, and the same when asked again
    assert all(Decimal(5) <= v <= Decimal(15) for v in volumes)
    assert len(set(volumes)) > 50
    assert volumes[0] == SimulatedProvider.minute_volume("BTC", minute, price=Decimal("50000"))


def test_a_simulated_quote_carries_its_volume_through_the_price_guard(btc, settings):
    # given
    settings.PRICE_PROVIDER = "simulated"

    # when
    with time_machine.travel(T0, tick=False):
        fetched = get_quotes([btc])["BTC"]
        read_again = get_quotes([btc])["BTC"]

    # then
    assert fetched.volume is not None
    assert fetched.volume > 0
    assert read_again.volume == fetched.volume


def test_coingecko_is_asked_for_its_day_volume_and_a_quote_without_it_stands(coingecko_server, btc, eth):
    # given: a volume for bitcoin, none for ethereum
    coingecko_server.set_price("bitcoin", "72000", volume_24h="1036800000")
    coingecko_server.set_price("ethereum", "3600", volume_24h=None)

    # when
    quotes = get_quotes([btc, eth])

    # then: 1,036,800,000 USD a day is 720,000 a minute, 10 BTC at 72,000
    assert coingecko_server.requests[0].query["include_24hr_vol"] == ["true"]
    assert quotes["BTC"].volume == Decimal("10")
    assert quotes["ETH"].volume is None
    assert quotes["ETH"].price == Decimal("3600")
