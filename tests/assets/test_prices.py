"""Price providers and the reuse of fetched prices (PRICE_CACHE_SECONDS), against a real local
CoinGecko (tests/support/price_server.py)."""

from __future__ import annotations

import itertools
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from assets.models import LastGoodPrice, PriceRecord
from assets.price_providers import SIMULATED_BUCKET_SECONDS, CoinGeckoProvider, SimulatedProvider, get_provider
from assets.prices import ProviderError, Quote, get_quotes, get_trade_quote, provider_status, store_quotes
from core.exceptions import PriceUnavailable
from tests.support.price_server import UNASKED_STATUS

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T0_UNIX = int(T0.timestamp())


@pytest.fixture
def sol(make_asset):
    return make_asset("SOL", name="Solana", coingecko_id="solana", reference_price=Decimal("150"))


# --- CoinGecko: the request --------------------------------------------------------------


def test_several_assets_are_priced_with_one_request(coingecko_server, btc, eth, sol):
    # given
    coingecko_server.set_price("bitcoin", "67187.3358", updated_at=T0_UNIX)
    coingecko_server.set_price("ethereum", "3456.78", updated_at=T0_UNIX - 30)
    coingecko_server.set_price("solana", "150", updated_at=T0_UNIX)

    # when
    with time_machine.travel(T0, tick=False):
        quotes = get_quotes([btc, eth, sol])

    # then
    assert coingecko_server.request_count == 1
    request = coingecko_server.requests[0]
    assert request.path == "/api/v3/simple/price"
    assert request.query == {
        "ids": ["bitcoin,ethereum,solana"],
        "vs_currencies": ["usd"],
        "include_last_updated_at": ["true"],
        "include_24hr_vol": ["true"],
        "precision": ["full"],
    }

    def minute(price: str) -> Decimal:  # the day's USD volume (the fake's default) a minute, in units
        return (Decimal("31235654587.08") / 1440 / Decimal(price)).quantize(Decimal("0.00000001"))

    assert quotes == {
        "BTC": Quote("BTC", Decimal("67187.335800000000"), T0, "coingecko"),
        "ETH": Quote("ETH", Decimal("3456.780000000000"), T0 - timedelta(seconds=30), "coingecko"),
        "SOL": Quote("SOL", Decimal("150.000000000000"), T0, "coingecko"),
    }
    assert [quotes[a].volume for a in ("BTC", "ETH", "SOL")] == [minute("67187.3358"), minute("3456.78"), minute("150")]
    assert str(quotes["SOL"].price) == "150.000000000000"


def test_price_keeps_every_digit_to_twelve_places_and_rounds_half_even_beyond(coingecko_server, btc, eth):
    # given
    coingecko_server.set_price("bitcoin", "67187.335812345678")
    coingecko_server.set_price("ethereum", "0.0000123456785000001")

    # when
    quotes = get_quotes([btc, eth])

    # then
    assert str(quotes["BTC"].price) == "67187.335812345678"
    assert str(quotes["ETH"].price) == "0.000012345679"


def test_assets_sharing_a_coingecko_id_are_asked_once_and_both_priced(coingecko_server, btc, make_asset):
    # given
    wrapped = make_asset("WBTC", coingecko_id="bitcoin")
    coingecko_server.set_price("bitcoin", "67000.5")

    # when
    quotes = get_quotes([btc, wrapped])

    # then
    assert coingecko_server.requests[0].query["ids"] == ["bitcoin"]
    assert quotes["BTC"].price == quotes["WBTC"].price == Decimal("67000.5")


def test_asset_without_coingecko_id_is_not_asked_for(coingecko_server, make_asset):
    # given
    local = make_asset("LOCAL", coingecko_id="")

    # when
    quotes = get_quotes([local])

    # then
    assert quotes == {}
    assert coingecko_server.request_count == 0


def test_demo_api_key_is_sent_in_its_header(coingecko_server, settings, btc):
    # given
    settings.COINGECKO_API_KEY = "CG-demo-key"
    coingecko_server.set_price("bitcoin", "67000")

    # when
    get_quotes([btc])

    # then
    headers = coingecko_server.requests[0].headers
    assert headers["x-cg-demo-api-key"] == "CG-demo-key"
    assert "x-cg-pro-api-key" not in headers


def test_no_api_key_header_without_a_key(coingecko_server, btc):
    # given
    coingecko_server.set_price("bitcoin", "67000")

    # when
    get_quotes([btc])

    # then
    headers = coingecko_server.requests[0].headers
    assert not {"x-cg-demo-api-key", "x-cg-pro-api-key"} & set(headers)


def test_pro_api_host_gets_the_pro_key_header():
    # given
    provider = CoinGeckoProvider(base_url="https://pro-api.coingecko.com/api/v3", api_key="CG-pro-key")

    # when
    headers = provider.headers()

    # then
    assert headers == {"Accept": "application/json", "x-cg-pro-api-key": "CG-pro-key"}


# --- CoinGecko: retries and failures -------------------------------------------------------


def test_server_error_is_retried_then_succeeds(coingecko_server, btc):
    # given
    coingecko_server.fail_next(500)
    coingecko_server.set_price("bitcoin", "67000")

    # when
    quote = get_trade_quote(btc)

    # then
    assert coingecko_server.request_count == 2
    assert quote.price == Decimal("67000")
    assert quote.stale is False


def test_rate_limit_waits_for_a_short_retry_after(coingecko_server, btc):
    # given
    coingecko_server.fail_next(429, headers={"Retry-After": "1"})
    coingecko_server.set_price("bitcoin", "67000")
    started = time.monotonic()

    # when
    quotes = get_quotes([btc])

    # then
    assert time.monotonic() - started >= 1.0
    assert coingecko_server.request_count == 2
    assert quotes["BTC"].price == Decimal("67000")


def test_rate_limit_with_a_long_retry_after_gives_up_at_once(coingecko_server, btc):
    # given
    coingecko_server.fail_next(429, headers={"Retry-After": "120"})
    coingecko_server.set_price("bitcoin", "67000")

    # when
    with pytest.raises(ProviderError, match="retry after 120 s"):
        CoinGeckoProvider().fetch([btc])

    # then
    assert coingecko_server.request_count == 1


def test_client_error_is_not_retried(coingecko_server, btc):
    # given
    coingecko_server.fail_next(401)

    # when
    with pytest.raises(ProviderError, match="HTTP 401"):
        CoinGeckoProvider().fetch([btc])

    # then
    assert coingecko_server.request_count == 1


def test_provider_giving_up_falls_back_to_last_known_price_marked_stale(coingecko_server, btc):
    # given a price seen once, then its fresh cache entry expired and CoinGecko down
    coingecko_server.set_price("bitcoin", "67187.3358", updated_at=T0_UNIX)
    with time_machine.travel(T0, tick=False):
        get_quotes([btc])
    coingecko_server.fail_next(503, times=3)

    # when
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        quotes = get_quotes([btc])

    # then: 1 + (1 try + 2 retries)
    assert coingecko_server.request_count == 4
    assert quotes == {"BTC": Quote("BTC", Decimal("67187.3358"), T0, "coingecko", stale=True)}


def test_trading_refuses_the_last_known_price(coingecko_server, btc):
    # given
    with time_machine.travel(T0, tick=False):
        store_quotes([Quote("BTC", Decimal("67000"), T0, "coingecko")])
    coingecko_server.fail_next(503, times=3)

    # when
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False), pytest.raises(PriceUnavailable) as excinfo:
        get_trade_quote(btc)

    # then
    assert excinfo.value.details == {"asset_id": "BTC"}
    assert coingecko_server.request_count == 3


def test_trading_refuses_when_there_was_never_a_price(coingecko_server, btc):
    # given
    coingecko_server.fail_next(503, times=3)

    # when
    with pytest.raises(PriceUnavailable) as excinfo:
        get_trade_quote(btc)

    # then
    assert excinfo.value.details == {"asset_id": "BTC"}
    assert get_quotes([btc]) == {}


def test_answer_slower_than_the_read_timeout_is_a_provider_error(coingecko_server, settings, btc):
    # given
    settings.COINGECKO_RETRIES = 0
    coingecko_server.delay_next(3)
    coingecko_server.set_price("bitcoin", "67000")
    started = time.monotonic()

    # when
    with pytest.raises(ProviderError, match="unreachable after 1 attempt"):
        CoinGeckoProvider().fetch([btc])

    # then
    assert time.monotonic() - started < 1.5
    assert coingecko_server.request_count == 1


def test_slow_answer_is_retried_then_succeeds(coingecko_server, btc):
    # given
    coingecko_server.delay_next(3)
    coingecko_server.set_price("bitcoin", "67000")

    # when
    quotes = get_quotes([btc])

    # then
    assert coingecko_server.request_count == 2
    assert quotes["BTC"].price == Decimal("67000")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(b"\xff\xfe\x00\x81 not even text", id="binary"),
        pytest.param(b"[67000]", id="json-list"),
        pytest.param(b'"67000"', id="json-string"),
        pytest.param(b"null", id="json-null"),
        pytest.param(b"", id="empty"),
    ],
)
def test_garbage_answer_is_a_provider_error_and_prices_nothing(coingecko_server, btc, body):
    # given
    coingecko_server.garbage_next(body)

    # when
    with pytest.raises(ProviderError, match="CoinGecko answered"):
        CoinGeckoProvider().fetch([btc])

    # then
    coingecko_server.garbage_next(body)
    assert get_quotes([btc]) == {}
    assert coingecko_server.request_count == 2


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param('{"usd": -1, "usd_last_updated_at": 1740830400}', id="negative"),
        pytest.param('{"usd": 0, "usd_last_updated_at": 1740830400}', id="zero"),
        pytest.param('{"usd": 0.0000000000001}', id="rounds-to-zero"),
        pytest.param('{"usd": NaN}', id="nan-literal"),
        pytest.param('{"usd": Infinity}', id="infinity"),
        pytest.param('{"usd": "NaN"}', id="nan-string"),
        pytest.param('{"usd": "67000"}', id="string-price"),
        pytest.param('{"usd": null}', id="null"),
        pytest.param('{"usd": true}', id="boolean"),
        pytest.param("{}", id="no-usd"),
        pytest.param('{"usd": 1e30}', id="too-many-digits"),
        pytest.param('{"usd": 67000, "usd_last_updated_at": "yesterday"}', id="bad-timestamp"),
        pytest.param('{"usd": 67000, "usd_last_updated_at": 1740830400.5}', id="float-timestamp"),
        pytest.param('{"usd": 67000, "usd_last_updated_at": 99999999999999999999}', id="huge-timestamp"),
        pytest.param('"67000"', id="entry-not-object"),
    ],
)
def test_unusable_price_skips_only_that_asset(coingecko_server, btc, eth, entry):
    # given
    coingecko_server.set_entry("bitcoin", entry)
    coingecko_server.set_price("ethereum", "3456.78")

    # when
    quotes = get_quotes([btc, eth])

    # then
    assert set(quotes) == {"ETH"}
    assert quotes["ETH"].price == Decimal("3456.78")


def test_id_missing_from_the_answer_is_absent(coingecko_server, btc, eth):
    # given
    coingecko_server.set_price("bitcoin", "67000")

    # when
    quotes = get_quotes([btc, eth])

    # then
    assert coingecko_server.requests[0].query["ids"] == ["bitcoin,ethereum"]
    assert set(quotes) == {"BTC"}


def test_missing_last_updated_at_means_observed_now(coingecko_server, btc):
    # given
    coingecko_server.set_price("bitcoin", "67000", updated_at=None)

    # when
    with time_machine.travel(T0, tick=False):
        quotes = get_quotes([btc])

    # then
    assert quotes["BTC"].as_of == T0


def test_last_updated_at_within_the_clock_skew_allowance_is_taken_as_now(coingecko_server, btc):
    # given: CoinGecko's clock 10 s ahead of ours
    coingecko_server.set_price("bitcoin", "67000", updated_at=T0_UNIX + 10)

    # when
    with time_machine.travel(T0, tick=False):
        quote = get_trade_quote(btc)

    # then
    assert (quote.price, quote.as_of) == (Decimal("67000"), T0)


@pytest.mark.parametrize(
    "updated_at",
    [
        pytest.param(0, id="epoch-0"),
        pytest.param(T0_UNIX - 86_401, id="more-than-a-day-old"),
        pytest.param(T0_UNIX + 11, id="11-seconds-ahead"),
        pytest.param(T0_UNIX + 11 * 86_400, id="11-days-ahead"),
    ],
)
def test_quote_stamped_at_epoch_0_in_the_future_or_a_day_old_is_refused_and_recorded_nowhere(
    coingecko_server, btc, eth, updated_at
):
    # given
    coingecko_server.set_price("bitcoin", "67000", updated_at=updated_at)
    coingecko_server.set_price("ethereum", "3456.78", updated_at=T0_UNIX)

    # when
    with time_machine.travel(T0, tick=False):
        quotes = get_quotes([btc, eth])
        with pytest.raises(PriceUnavailable) as excinfo:
            get_trade_quote(btc)

    # then: unreadable for BTC alone, like a failure for that asset: no price, no history, no trade
    assert set(quotes) == {"ETH"}
    assert excinfo.value.details == {"asset_id": "BTC"}
    assert list(PriceRecord.objects.values_list("asset_id", "as_of")) == [("ETH", T0)]
    assert list(LastGoodPrice.objects.values_list("asset_id", flat=True)) == ["ETH"]


def test_quote_stamped_in_the_future_leaves_the_last_good_price_shown_stale(coingecko_server, btc):
    # given: 67000 at T0, then a quote stamped 11 days ahead
    coingecko_server.set_price("bitcoin", "67000", updated_at=T0_UNIX)
    with time_machine.travel(T0, tick=False):
        get_quotes([btc])
    coingecko_server.set_price("bitcoin", "67100", updated_at=T0_UNIX + 11 * 86_400)

    # when
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        quotes = get_quotes([btc])

    # then
    assert quotes == {"BTC": Quote("BTC", Decimal("67000"), T0, "coingecko", stale=True)}
    assert list(PriceRecord.objects.values_list("price", "as_of")) == [(Decimal("67000"), T0)]


# --- the cache and staleness ---------------------------------------------------------------


def test_fresh_cache_answers_without_a_request(coingecko_server, btc):
    # given
    coingecko_server.set_price("bitcoin", "67000", updated_at=T0_UNIX)
    with time_machine.travel(T0, tick=False):
        first = get_quotes([btc])

    # when
    with time_machine.travel(T0 + timedelta(seconds=9), tick=False):
        second = get_quotes([btc])

    # then
    assert coingecko_server.request_count == 1
    assert second == first


def test_cache_expires_after_price_cache_seconds(coingecko_server, btc):
    # given
    coingecko_server.set_price("bitcoin", "67000", updated_at=T0_UNIX)
    with time_machine.travel(T0, tick=False):
        get_quotes([btc])
    coingecko_server.set_price("bitcoin", "68000", updated_at=T0_UNIX + 11)

    # when
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        quotes = get_quotes([btc])

    # then
    assert coingecko_server.request_count == 2
    assert quotes["BTC"] == Quote("BTC", Decimal("68000"), T0 + timedelta(seconds=11), "coingecko")


def test_only_assets_missing_from_the_cache_are_asked_for(coingecko_server, btc, eth):
    # given
    with time_machine.travel(T0, tick=False):
        store_quotes([Quote("BTC", Decimal("67000"), T0, "coingecko")])
    coingecko_server.set_price("ethereum", "3456.78", updated_at=T0_UNIX)

    # when
    with time_machine.travel(T0, tick=False):
        quotes = get_quotes([btc, eth])

    # then
    assert coingecko_server.requests[0].query["ids"] == ["ethereum"]
    assert quotes == {
        "BTC": Quote("BTC", Decimal("67000"), T0, "coingecko"),
        "ETH": Quote("ETH", Decimal("3456.78"), T0, "coingecko"),
    }


def test_cached_quote_turns_stale_after_price_max_age(coingecko_server, settings, btc):
    # given a cache that outlives the max age, so nothing is fetched again
    settings.PRICE_CACHE_SECONDS = 300
    settings.PRICE_MAX_AGE_SECONDS = 60
    with time_machine.travel(T0, tick=False):
        store_quotes([Quote("BTC", Decimal("67000"), T0, "coingecko")])

    # when
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        at_max_age = get_quotes([btc])["BTC"]
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        past_max_age = get_quotes([btc])["BTC"]
        with pytest.raises(PriceUnavailable):
            get_trade_quote(btc)

    # then
    assert at_max_age.stale is False
    assert past_max_age.stale is True
    assert coingecko_server.request_count == 0


def test_price_observed_long_ago_is_stale_on_arrival(coingecko_server, btc):
    # given
    coingecko_server.set_price("bitcoin", "67000", updated_at=T0_UNIX - 61)

    # when
    with time_machine.travel(T0, tick=False):
        quotes = get_quotes([btc])
        with pytest.raises(PriceUnavailable):
            get_trade_quote(btc)

    # then
    assert quotes["BTC"].stale is True


# --- the simulated provider ----------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the simulated provider must not touch the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_simulated_price_is_the_same_for_the_same_instant(settings, btc, no_network):
    # given
    settings.PRICE_PROVIDER = "simulated"

    # when
    with time_machine.travel(T0 + timedelta(seconds=2), tick=False):
        quote = get_quotes([btc])["BTC"]
    with time_machine.travel(T0 + timedelta(seconds=4), tick=False):
        again = SimulatedProvider().fetch([btc])["BTC"]

    # then: pinned, so every process on every run agrees (no per-process hash seed)
    assert quote == again == Quote("BTC", Decimal("50974.431350000000"), T0, "simulated")


def test_simulated_price_moves_between_buckets(btc):
    # given
    provider = SimulatedProvider()

    # when
    with time_machine.travel(T0, tick=False):
        first = provider.fetch([btc])["BTC"]
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        second = provider.fetch([btc])["BTC"]

    # then
    assert second.as_of == T0 + timedelta(seconds=5)
    assert second.price != first.price


def walk(asset_id: str, volatility: str, *, days: int, step_seconds: int) -> list[float]:
    """The simulated multiplier of ``asset_id`` every ``step_seconds`` for ``days`` from T0."""
    step = step_seconds // SIMULATED_BUCKET_SECONDS
    start = T0_UNIX // SIMULATED_BUCKET_SECONDS
    count = days * 86_400 // step_seconds
    return [
        float(SimulatedProvider.multiplier(asset_id, start + i * step, daily_volatility=Decimal(volatility)))
        for i in range(count + 1)
    ]


def moves(multipliers: list[float], span: int) -> list[float]:
    return [later / earlier - 1 for earlier, later in zip(multipliers[:-span], multipliers[span:], strict=True)]


def test_simulated_btc_moves_about_3_percent_a_day_and_under_1_percent_in_3_minutes():
    # given: BTC's daily volatility (assets/data/assets.json), a minute apart for 120 days
    minutes = walk("BTC", "0.03", days=120, step_seconds=60)

    # when
    three_minutes = moves(minutes, 3)
    days = moves(minutes, 1440)

    # then: issue 21 saw 6 % in three minutes; a real BTC moves 2 to 4 % on a typical day
    assert max(abs(move) for move in three_minutes) < 0.01
    assert 0.02 < statistics.pstdev(days) < 0.04
    assert max(abs(move) for move in days) < 0.12
    assert min(minutes) > 0.92
    assert max(minutes) < 1.09


def test_simulated_stablecoin_stays_within_half_a_percent_and_a_small_cap_moves_more_than_btc():
    # when: a day apart for a year
    stable = walk("USDC", "0.001", days=365, step_seconds=3600)
    btc = walk("BTC", "0.03", days=365, step_seconds=3600)
    small_cap = walk("APT", "0.065", days=365, step_seconds=3600)

    # then
    assert min(stable) > 0.995
    assert max(stable) < 1.005
    assert statistics.pstdev(moves(small_cap, 24)) > 2 * statistics.pstdev(moves(btc, 24))


def test_simulated_walk_moves_smoothly_and_in_nine_digits():
    # when: a day of 5 s buckets of the most volatile asset allowed
    multipliers = [
        SimulatedProvider.multiplier("APT", bucket, daily_volatility=Decimal("0.2")) for bucket in range(17_280)
    ]

    # then
    assert max(abs(b / a - 1) for a, b in itertools.pairwise(multipliers)) < Decimal("0.01")
    assert all(m == m.quantize(Decimal("1e-9")) for m in multipliers)


def test_simulated_assets_do_not_move_in_lockstep():
    # when
    btc = walk("BTC", "0.03", days=1, step_seconds=300)
    eth = walk("ETH", "0.03", days=1, step_seconds=300)

    # then
    assert btc != eth


# --- provider choice and health --------------------------------------------------------------


def test_get_provider_follows_the_setting(settings):
    # given
    settings.PRICE_PROVIDER = "simulated"
    simulated = get_provider()
    settings.PRICE_PROVIDER = "coingecko"

    # when
    coingecko = get_provider()

    # then
    assert (simulated.name, coingecko.name) == ("simulated", "coingecko")


def test_unknown_provider_is_a_configuration_error(settings):
    # given
    settings.PRICE_PROVIDER = "bloomberg"

    # when / then
    with pytest.raises(ImproperlyConfigured, match="bloomberg"):
        get_provider()


def test_provider_status_reports_the_last_success_without_calling_the_provider(coingecko_server, btc):
    # given
    coingecko_server.set_price("bitcoin", "67000", updated_at=T0_UNIX)
    with time_machine.travel(T0, tick=False):
        get_quotes([btc])

    # when
    with time_machine.travel(T0 + timedelta(seconds=3600), tick=False):
        statuses = [provider_status() for _ in range(5)]

    # then: one upstream call, the price's; none for the health checks
    assert coingecko_server.request_count == 1
    assert statuses == [{**UNASKED_STATUS, "last_success_at": T0.isoformat()}] * 5


def test_provider_status_reports_failures_and_the_open_breaker(coingecko_server, settings, btc):
    # given
    settings.COINGECKO_RETRIES = 0
    coingecko_server.fail_next(503, times=3)
    for second in range(3):
        with time_machine.travel(T0 + timedelta(seconds=second), tick=False):
            get_quotes([btc])

    # when
    status = provider_status()

    # then
    assert status == {
        "provider": "coingecko",
        "ok": False,
        "breaker": "open",
        "consecutive_failures": 3,
        "last_success_at": None,
        "last_failure_at": (T0 + timedelta(seconds=2)).isoformat(),
        "last_error": "CoinGecko answered HTTP 503 1 time(s).",
    }
    assert coingecko_server.request_count == 3


def test_provider_status_of_a_process_that_never_asked_is_ok_and_says_so(coingecko_server, db):
    # when
    status = provider_status()

    # then
    assert status == UNASKED_STATUS
    assert coingecko_server.request_count == 0


def test_unreachable_server_is_a_provider_error(btc):
    # given: nothing listens on port 9 of localhost
    provider = CoinGeckoProvider(base_url="http://127.0.0.1:9/api/v3", retries=0, timeout_seconds=0.5)

    # when / then
    with pytest.raises(ProviderError, match="unreachable after 1 attempt"):
        provider.fetch([btc])
