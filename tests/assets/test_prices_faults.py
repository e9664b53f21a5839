"""A provider that hangs, drips, fails in a row or answers nonsense, against the real local
CoinGecko of tests/support/price_server.py (docs/DESIGN.md, "Prices and the price guard")."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from assets.price_providers import CoinGeckoProvider
from assets.prices import ProviderError, Quote, get_quotes, get_trade_quote, provider_status, store_quotes
from core.exceptions import PriceUnavailable
from tests.support.process_state import reset_breakers

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def elapsed(started: float) -> float:
    return time.monotonic() - started


@pytest.fixture
def btc_known_at_67000(btc):
    """The last known BTC price: 67000 from CoinGecko at T0."""
    with time_machine.travel(T0, tick=False):
        store_quotes([Quote("BTC", Decimal("67000"), T0, "coingecko")])


# --- the total deadline ----------------------------------------------------------------------


def test_hung_provider_costs_one_deadline_whatever_the_retries(coingecko_server, settings, btc):
    # given: each try may wait 5 s for bytes, three tries: 15 s before the deadline existed
    settings.COINGECKO_TIMEOUT_SECONDS = 5
    settings.COINGECKO_RETRIES = 2
    settings.PRICE_DEADLINE_SECONDS = 1
    coingecko_server.hang_next(times=3)
    started = time.monotonic()

    # when: the caller gives up at the deadline, or the worker (its read timeout capped to the
    # time left) finds no time to retry a moment before: either way a ProviderError, at 1 s
    with pytest.raises(ProviderError):
        CoinGeckoProvider().fetch([btc])

    # then: one deadline, not three read timeouts; no retry had time to start
    assert 0.9 <= elapsed(started) < 1.3
    assert coingecko_server.request_count == 1


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers-and-body"])
def test_provider_dripping_bytes_is_cut_off_at_the_deadline(coingecko_server, settings, btc, headers_too):
    # given: a byte every 0.1 s never trips a 5 s read timeout
    settings.COINGECKO_TIMEOUT_SECONDS = 5
    settings.PRICE_DEADLINE_SECONDS = 1
    coingecko_server.set_price("bitcoin", "67000")
    coingecko_server.drip_next(0.1, headers_too=headers_too)
    started = time.monotonic()

    # when
    with pytest.raises(ProviderError):
        CoinGeckoProvider().fetch([btc])

    # then
    assert 1.0 <= elapsed(started) < 1.3
    assert coingecko_server.request_count == 1


def test_retries_stop_when_the_deadline_leaves_no_time_for_the_backoff(coingecko_server, settings, btc):
    # given: each try times out after 0.5 s; the second try would start past 1.2 s
    settings.COINGECKO_TIMEOUT_SECONDS = 0.5
    settings.COINGECKO_RETRIES = 5
    settings.PRICE_DEADLINE_SECONDS = 1.2
    coingecko_server.hang_next(times=6)
    started = time.monotonic()

    # when
    with pytest.raises(ProviderError):
        CoinGeckoProvider().fetch([btc])

    # then: 0.5 s + 0.2 s backoff + second try capped to the 0.5 s left
    assert elapsed(started) < 1.4
    assert coingecko_server.request_count == 2


def test_answer_that_arrives_in_time_is_used_after_a_slow_try(coingecko_server, settings, btc):
    # given
    settings.COINGECKO_TIMEOUT_SECONDS = 0.3
    coingecko_server.delay_next(1)
    coingecko_server.set_price("bitcoin", "67000")

    # when
    quote = get_trade_quote(btc)

    # then
    assert quote.price == Decimal("67000")
    assert coingecko_server.request_count == 2


def test_body_larger_than_a_price_answer_is_a_provider_error(coingecko_server, btc):
    # given
    coingecko_server.garbage_next(b'{"bitcoin": {"usd": 1}, "pad": "' + b"x" * (2 << 20) + b'"}')

    # when / then
    with pytest.raises(ProviderError, match="more than 1048576 bytes"):
        CoinGeckoProvider().fetch([btc])


def test_reply_nested_100000_deep_is_a_provider_error(coingecko_server, btc):
    # given: json.loads raises RecursionError on this, which used to escape as a 500
    coingecko_server.garbage_next(b"[" * 100_000 + b"]" * 100_000)

    # when
    with pytest.raises(ProviderError, match="not JSON"):
        CoinGeckoProvider().fetch([btc])

    # then: through the cache layer it is a failure like any other
    coingecko_server.garbage_next(b'{"bitcoin": ' * 100_000 + b"1" + b"}" * 100_000)
    assert get_quotes([btc]) == {}


# --- the circuit breaker ---------------------------------------------------------------------


@pytest.fixture
def open_breaker(coingecko_server, settings, btc):
    """Opens the breaker with one failed call (no retries); it half-opens ``reset_seconds`` later."""

    def open_(*, reset_seconds: float) -> None:
        settings.COINGECKO_RETRIES = 0
        settings.PRICE_BREAKER_FAILURES = 1
        settings.PRICE_BREAKER_RESET_SECONDS = reset_seconds
        coingecko_server.fail_next(503)
        get_quotes([btc])

    return open_


def test_breaker_opens_after_failures_in_a_row_and_then_answers_at_once(coingecko_server, settings, btc):
    # given: three calls each give up after a hung try
    settings.PRICE_DEADLINE_SECONDS = 0.3
    settings.PRICE_BREAKER_FAILURES = 3
    coingecko_server.hang_next(times=10)
    for _ in range(3):
        with pytest.raises(PriceUnavailable):
            get_trade_quote(btc)
    asked = coingecko_server.request_count

    # when
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(PriceUnavailable) as excinfo:
            get_trade_quote(btc)
    took = elapsed(started)

    # then
    assert asked == 3
    assert coingecko_server.request_count == 3
    assert took < 0.1
    assert excinfo.value.code == "price_unavailable"


def test_open_breaker_shows_the_last_known_price_flagged_stale(coingecko_server, settings, btc, btc_known_at_67000):
    # given
    settings.COINGECKO_RETRIES = 0
    settings.PRICE_BREAKER_FAILURES = 1
    coingecko_server.fail_next(503)
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        get_quotes([btc])

    # when
    with time_machine.travel(T0 + timedelta(seconds=12), tick=False):
        quotes = get_quotes([btc])

    # then
    assert quotes == {"BTC": Quote("BTC", Decimal("67000"), T0, "coingecko", stale=True)}
    assert coingecko_server.request_count == 1


def test_one_probe_after_the_reset_time_closes_the_breaker(coingecko_server, open_breaker, btc):
    # given an open breaker
    open_breaker(reset_seconds=0.3)
    coingecko_server.set_price("bitcoin", "67000")
    assert get_quotes([btc]) == {}

    # when
    time.sleep(0.35)
    quote = get_trade_quote(btc)

    # then
    assert quote.price == Decimal("67000")
    assert coingecko_server.request_count == 2


def test_failed_probe_opens_the_breaker_for_another_period(coingecko_server, open_breaker, btc):
    # given an open breaker whose reset time has passed, and a provider still failing
    open_breaker(reset_seconds=0.3)
    time.sleep(0.35)
    coingecko_server.fail_next(503)

    # when: the probe fails, then the provider recovers at once
    get_quotes([btc])
    coingecko_server.set_price("bitcoin", "67000")
    during = get_quotes([btc])
    time.sleep(0.35)
    after = get_quotes([btc])

    # then
    assert during == {}
    assert after["BTC"].price == Decimal("67000")
    assert coingecko_server.request_count == 3


def test_only_one_caller_probes_a_half_open_breaker(coingecko_server, open_breaker, settings, btc):
    # given an open breaker whose reset time has passed, and a provider that hangs
    settings.PRICE_DEADLINE_SECONDS = 0.5
    open_breaker(reset_seconds=0.2)
    time.sleep(0.25)
    coingecko_server.hang_next(times=10)
    durations: list[float] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        started = time.monotonic()
        get_quotes([btc])
        durations.append(elapsed(started))

    # when: eight threads ask at once
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: one probe waited for the deadline, the seven others were answered at once
    assert coingecko_server.request_count == 2
    durations.sort()
    assert durations[-1] >= 0.5
    assert durations[-2] < 0.1


def test_success_resets_the_count_of_failures_in_a_row(coingecko_server, settings, btc):
    # given: two failures, one success, two failures (never three in a row)
    settings.COINGECKO_RETRIES = 0
    settings.PRICE_BREAKER_FAILURES = 3
    settings.PRICE_CACHE_SECONDS = 0
    coingecko_server.set_price("bitcoin", "67000")
    coingecko_server.fail_next(503, times=2)
    get_quotes([btc])
    get_quotes([btc])
    get_quotes([btc])
    coingecko_server.fail_next(503, times=2)
    get_quotes([btc])
    get_quotes([btc])

    # when
    quote = get_trade_quote(btc)

    # then
    assert quote.price == Decimal("67000")
    assert coingecko_server.request_count == 6


def test_breaker_opened_by_one_process_spares_the_others_their_failures(coingecko_server, settings, btc):
    # given: this process opened its breaker, then forgot it, as a fresh server process would
    settings.COINGECKO_RETRIES = 0
    settings.PRICE_BREAKER_FAILURES = 2
    coingecko_server.fail_next(503, times=2)
    get_quotes([btc])
    get_quotes([btc])
    reset_breakers()

    # when
    started = time.monotonic()
    with pytest.raises(PriceUnavailable):
        get_trade_quote(btc)
    took = elapsed(started)

    # then: refused at once, without asking the provider a third time
    assert coingecko_server.request_count == 2
    assert took < 0.1
    status = provider_status()
    assert (status["breaker"], status["consecutive_failures"]) == ("open", 0)
    assert status["last_error"] == "CoinGecko answered HTTP 503 1 time(s). (seen by another server process)"


def test_other_processes_probe_when_the_opener_does_and_a_success_clears_the_shared_opening(
    coingecko_server, open_breaker, settings, btc
):
    # given: a shared opening, adopted by a fresh process
    settings.PRICE_CACHE_SECONDS = 0
    open_breaker(reset_seconds=0.3)
    reset_breakers()
    get_quotes([btc])
    coingecko_server.set_price("bitcoin", "67000")

    # when: the reset time passes; this process probes; then another fresh process asks
    time.sleep(0.35)
    probed = get_trade_quote(btc)
    reset_breakers()
    fresh = get_trade_quote(btc)

    # then
    assert probed.price == fresh.price == Decimal("67000")
    assert coingecko_server.request_count == 3


# --- implausible quotes ----------------------------------------------------------------------


@pytest.mark.parametrize("price", ["1e15", "1000000000000000", "0.000000000001", "1e-12", "0.000000009"])
def test_price_outside_the_plausible_range_is_refused_and_not_traded_on(coingecko_server, btc, price):
    # given
    coingecko_server.set_price("bitcoin", price)

    # when
    quotes = get_quotes([btc])
    with pytest.raises(PriceUnavailable):
        get_trade_quote(btc)

    # then: nothing stored, so each call asked again
    assert quotes == {}
    assert coingecko_server.request_count == 2


def test_price_at_the_plausible_bounds_is_accepted(coingecko_server, btc, eth):
    # given
    coingecko_server.set_price("bitcoin", "100000000")
    coingecko_server.set_price("ethereum", "0.00000001")

    # when
    quotes = get_quotes([btc, eth])

    # then
    assert (quotes["BTC"].price, quotes["ETH"].price) == (Decimal("100000000"), Decimal("0.00000001"))


@pytest.mark.parametrize("price", ["100501", "33333"], ids=["up", "down"])
def test_jump_beyond_max_price_jump_falls_back_to_the_last_known_price(
    coingecko_server, btc, btc_known_at_67000, price
):
    # given: last known 67000; MAX_PRICE_JUMP 0.5 allows 33500 to 100500
    coingecko_server.set_price("bitcoin", price)

    # when
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        quotes = get_quotes([btc])
        with pytest.raises(PriceUnavailable):
            get_trade_quote(btc)

    # then
    assert quotes == {"BTC": Quote("BTC", Decimal("67000"), T0, "coingecko", stale=True)}


@pytest.mark.parametrize("price", ["100500", "33500"], ids=["up", "down"])
def test_move_of_exactly_max_price_jump_is_accepted(coingecko_server, btc, btc_known_at_67000, price):
    # given: last known 67000
    coingecko_server.set_price("bitcoin", price)

    # when
    with time_machine.travel(T0 + timedelta(seconds=11), tick=False):
        quote = get_trade_quote(btc)

    # then
    assert quote.price == Decimal(price)


def test_implausible_price_skips_only_that_asset(coingecko_server, btc, eth):
    # given
    coingecko_server.set_price("bitcoin", "1e15")
    coingecko_server.set_price("ethereum", "3456.78")

    # when
    quotes = get_quotes([btc, eth])

    # then
    assert set(quotes) == {"ETH"}
