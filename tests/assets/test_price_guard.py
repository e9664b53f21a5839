"""The price guard (assets/price_guard.py) against the real local CoinGecko: a level far from
the last good price becomes good only once the provider has kept answering it for
PRICE_CONFIRM_SECONDS (120) across PRICE_CONFIRM_FETCHES (3) fetches, whatever reads happen
meanwhile, and what it remembers lives in PostgreSQL, whatever the cache does."""

from __future__ import annotations

import ast
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.services import create_api_key, issue_token
from assets import price_guard
from assets.models import LastGoodPrice, PriceRecord
from assets.price_events import PRICE_EVENTS
from assets.prices import Quote, get_quotes, get_trade_quote
from balances.models import AssetBalance, UsdBalance
from orders.models import Order
from tests.support.process_state import forget_outages
from tests.support.processes import OwnRedis, own_session

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
BUY_ONE_BTC = {"asset_id": "BTC", "order_type": "BUY", "quantity": "1"}
LATEST_QUOTES = "/v1beta3/crypto/us/latest/quotes"


def at(seconds: float):
    """Time frozen ``seconds`` after T0, in every thread of this process (the local CoinGecko
    stamps its answers with it)."""
    return time_machine.travel(T0 + timedelta(seconds=seconds), tick=False)


def guard_row() -> tuple:
    row = LastGoodPrice.objects.get(asset_id="BTC")
    return row.price, row.candidate_price, row.candidate_fetches


@pytest.fixture
def btc_good_at_67000(coingecko_server, settings, btc):
    """BTC fetched at 67000 at T0; from then on every read asks the provider (the worst case
    for a guard that counted answers)."""
    coingecko_server.set_price("bitcoin", "67000")
    with at(0):
        assert get_trade_quote(btc).price == Decimal("67000")
    settings.PRICE_CACHE_SECONDS = 0
    return btc


# --- the rule, at the price layer ------------------------------------------------------


def test_a_far_level_is_held_then_good_once_it_has_held_for_the_confirmation_time(coingecko_server, btc_good_at_67000):
    # given: a real crash, 67000 -> 20000
    coingecko_server.set_price("bitcoin", "20000")

    # when: fetched every 30 s
    seen = []
    for second in (11, 41, 71, 101, 131):
        with at(second):
            seen.append(get_quotes([btc_good_at_67000])["BTC"])

    # then: shown at the last good price, stale, until three fetches (11, 71, 131) spread over
    # 120 s confirm it; the third answer (at 71) is not enough
    held = Quote("BTC", Decimal("67000"), T0, "coingecko", stale=True)
    assert seen == [held] * 4 + [Quote("BTC", Decimal("20000"), T0 + timedelta(seconds=131), "coingecko")]
    with at(131):
        assert get_trade_quote(btc_good_at_67000).price == Decimal("20000")
    assert list(PriceRecord.objects.order_by("as_of").values_list("price", flat=True)) == [
        Decimal("67000"),
        Decimal("20000"),
    ]


def test_fetches_closer_together_than_the_spacing_count_once_so_reads_cannot_speed_a_confirmation(
    coingecko_server, btc_good_at_67000
):
    # given
    coingecko_server.set_price("bitcoin", "20000")

    # when: ten fetches every five seconds for two minutes (240 answers at the new level)
    for second in range(11, 131, 5):
        with at(second):
            for _ in range(10):
                get_quotes([btc_good_at_67000])
    held_at_126 = guard_row()
    with at(131):
        at_131 = get_trade_quote(btc_good_at_67000)

    # then: counted at 11 and 71 only; good at 131, 120 s after it was first seen
    assert coingecko_server.request_count == 1 + 240 + 1
    assert held_at_126 == (Decimal("67000"), Decimal("20000"), 2)
    assert at_131.price == Decimal("20000")
    assert guard_row() == (Decimal("20000"), None, 0)


def test_a_quote_back_near_the_last_good_price_cancels_the_candidate(coingecko_server, btc_good_at_67000):
    # when: 670000 (a decimal point slipped), good again at 101, then the slip again
    shown = []
    answers = [(11, "670000"), (41, "670000"), (101, "67100"), (131, "670000"), (161, "670000"), (191, "670000")]
    for second, answer in answers:
        coingecko_server.set_price("bitcoin", answer)
        with at(second):
            quote = get_quotes([btc_good_at_67000])["BTC"]
        shown.append((quote.price, quote.stale))

    # then: the good answer cancelled the first candidate (had it been the slip too, 161 would
    # have confirmed it: 11, 101, 161); the second, seen at 131 and 191, is still held
    assert shown == [
        (Decimal("67000"), True),
        (Decimal("67000"), True),
        (Decimal("67100"), False),
        (Decimal("67100"), True),
        (Decimal("67100"), True),
        (Decimal("67100"), True),
    ]
    assert guard_row() == (Decimal("67100"), Decimal("670000"), 2)


def test_a_candidate_not_seen_for_the_confirmation_time_starts_over(coingecko_server, btc_good_at_67000):
    # given: counted twice (11, 71), then no fetch for more than 120 s
    coingecko_server.set_price("bitcoin", "20000")
    for second in (11, 71):
        with at(second):
            get_quotes([btc_good_at_67000])

    # when
    with at(192):
        quote = get_quotes([btc_good_at_67000])["BTC"]

    # then
    assert (quote.price, quote.stale) == (Decimal("67000"), True)
    row = LastGoodPrice.objects.get()
    assert (row.candidate_since, row.candidate_fetches) == (T0 + timedelta(seconds=192), 1)


def test_a_second_far_level_starts_a_candidate_of_its_own(coingecko_server, btc_good_at_67000):
    # given: 20000 counted at 11 and 71
    coingecko_server.set_price("bitcoin", "20000")
    for second in (11, 71):
        with at(second):
            get_quotes([btc_good_at_67000])

    # when: 5000 at 131, when 20000 would have been confirmed
    coingecko_server.set_price("bitcoin", "5000")
    with at(131):
        quote = get_quotes([btc_good_at_67000])["BTC"]

    # then
    assert (quote.price, quote.stale) == (Decimal("67000"), True)
    assert guard_row() == (Decimal("67000"), Decimal("5000"), 1)


def test_a_quote_observed_before_the_last_good_one_never_replaces_it(coingecko_server, btc_good_at_67000):
    # given: a lagging CoinGecko node answers a price stamped 30 s before the one we have
    coingecko_server.set_price("bitcoin", "66000", updated_at=int(T0.timestamp()) - 30)

    # when
    with at(11):
        quote = get_quotes([btc_good_at_67000])["BTC"]

    # then: the newer price stays, fresh (the provider did answer)
    assert quote == Quote("BTC", Decimal("67000"), T0, "coingecko")
    assert list(PriceRecord.objects.values_list("price", flat=True)) == [Decimal("67000")]


def test_a_price_asked_again_within_the_cache_time_costs_one_select_and_writes_nothing(
    coingecko_server, settings, btc, django_assert_num_queries
):
    # given
    coingecko_server.set_price("bitcoin", "67000")
    with at(0):
        get_quotes([btc])

    # when
    with at(9), django_assert_num_queries(1) as captured:
        quote = get_trade_quote(btc)

    # then
    assert captured.captured_queries[0]["sql"].startswith("SELECT asset_id, price, as_of")
    assert quote.price == Decimal("67000")
    assert coingecko_server.request_count == 1


# --- two processes at once ---------------------------------------------------------------


def test_two_processes_judging_the_same_row_at_the_same_instant_count_one_fetch(btc, coingecko_server):
    # given: a candidate first seen at 11, and two processes that read the row before fetching at 71
    price_guard.store([Quote("BTC", Decimal("67000"), T0, "coingecko")], now=T0)
    seen_at_11 = Quote("BTC", Decimal("20000"), T0 + timedelta(seconds=11), "coingecko")
    price_guard.accept({"BTC": seen_at_11}, known=price_guard.read_last_good(["BTC"]), now=T0 + timedelta(seconds=11))
    read_by_both = price_guard.read_last_good(["BTC"])
    seen_at_71 = Quote("BTC", Decimal("20000"), T0 + timedelta(seconds=71), "coingecko")

    # when: the first writes; the second's write, based on the same read, loses the compare-and-swap
    first, _ = price_guard.accept({"BTC": seen_at_71}, known=read_by_both, now=T0 + timedelta(seconds=71))
    second, _ = price_guard.accept({"BTC": seen_at_71}, known=read_by_both, now=T0 + timedelta(seconds=71))

    # then: judged again on the first's row, it counts nothing more
    assert (first["BTC"].candidate_fetches, second["BTC"].candidate_fetches) == (2, 2)
    row = LastGoodPrice.objects.get()
    assert (row.candidate_fetches, row.version) == (2, read_by_both["BTC"].version + 2)


def test_a_process_with_an_older_read_never_regresses_the_last_good_price(btc):
    # given: two processes read the row of 67000 at T0
    price_guard.store([Quote("BTC", Decimal("67000"), T0, "coingecko")], now=T0)
    read_by_both = price_guard.read_last_good(["BTC"])
    now = T0 + timedelta(seconds=21)

    # when: the first stores 67500 observed at 20 s; the second then brings 67200 observed at 15 s
    price_guard.accept(
        {"BTC": Quote("BTC", Decimal("67500"), T0 + timedelta(seconds=20), "cg")}, known=read_by_both, now=now
    )
    stored, accepted = price_guard.accept(
        {"BTC": Quote("BTC", Decimal("67200"), T0 + timedelta(seconds=15), "cg")}, known=read_by_both, now=now
    )

    # then
    assert (stored["BTC"].price, accepted) == (Decimal("67500"), [])
    assert LastGoodPrice.objects.get().price == Decimal("67500")


@pytest.mark.django_db(transaction=True)
def test_eight_processes_fetching_at_the_same_instant_count_once(coingecko_server, btc_good_at_67000):
    # given: a candidate first seen at 11
    coingecko_server.set_price("bitcoin", "20000")
    with at(11):
        get_quotes([btc_good_at_67000])
    start = threading.Barrier(8)
    shown: list[tuple[Decimal, bool]] = []

    def fetch() -> None:
        try:
            start.wait()
            quote = get_quotes([btc_good_at_67000])["BTC"]
            shown.append((quote.price, quote.stale))
        finally:
            connection.close()

    # when: eight threads, each on its own connection, fetch at 71
    with at(71):
        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then: eight answers, one counted fetch
    assert shown == [(Decimal("67000"), True)] * 8
    assert coingecko_server.request_count == 1 + 1 + 8
    assert guard_row() == (Decimal("67000"), Decimal("20000"), 2)


@pytest.mark.django_db(transaction=True)
def test_the_prices_the_guard_accepts_are_announced_to_the_streams_and_those_it_holds_are_not(
    coingecko_server, btc_good_at_67000
):
    # given: a process listening as the market data streams do
    listener = own_session(autocommit=True)
    listener.execute(f"LISTEN {PRICE_EVENTS}")

    # when: a glitch (held), a price near the last good one (accepted), the glitch again (held)
    try:
        for second, answer in [(11, "6.7"), (21, "67100"), (31, "6.7")]:
            coingecko_server.set_price("bitcoin", answer)
            with at(second):
                get_quotes([btc_good_at_67000])
        announced = [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]
    finally:
        listener.close()

    # then
    assert [(event["price"], event["as_of"]) for event in announced] == [("67100", "2025-03-01T12:00:21.000000Z")]


# --- through both APIs, whatever the reads and the cache ---------------------------------


def redis_caches(url: str) -> dict:
    """What portfolio_project/settings.py builds from CACHE_URL=<url> (tests/faults checks it)."""
    options = {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25, "IGNORE_EXCEPTIONS": True}
    return {"default": {"BACKEND": "core.cache.FailOpenRedisCache", "LOCATION": url, "OPTIONS": options}}


@pytest.fixture(params=["locmem", "redis", "redis-killed-then-restarted"])
def cache_under_test(request, settings):
    """The cache the service runs with: local memory, a Redis of the test's own, or that Redis
    killed after the candidate is first seen and restarted (empty) a minute later."""
    if request.param == "locmem":
        yield request.param, None
        return
    redis = OwnRedis().start()
    settings.CACHES = redis_caches(redis.url)
    forget_outages()
    cache.clear()
    yield request.param, redis
    forget_outages()
    redis.stop()


@pytest.fixture
def trader(user):
    """The user's token client for /api/v1 and alpaca-py's client arguments for /v2."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    key = create_api_key(user=user, name="bot")
    return client, (key.api_key.key_id, key.secret_key)


@pytest.mark.django_db(transaction=True)
def test_a_crash_served_for_less_than_the_confirmation_time_never_fills_an_order_whatever_the_reads(
    coingecko_server, btc_good_at_67000, cache_under_test, trader, live_server, user, monkeypatch
):
    # given: the provider now answers 6.7 (-99.99 %), stamped as it answers; anonymous reads
    # as many as from many addresses (one address gets THROTTLE_ANON_MARKET_RATE)
    rates = {**SimpleRateThrottle.THROTTLE_RATES, "anon_market": "1000000/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    kind, redis = cache_under_test
    client, (key_id, secret) = trader
    alpaca = TradingClient(key_id, secret, paper=True, url_override=live_server.url)
    anonymous = APIClient()
    cash_before = UsdBalance.objects.get(user=user).current_balance
    coingecko_server.set_price("bitcoin", "6.7")

    # when: every 20 s for the next 118 s, 50 anonymous and 5 authenticated reads (each asks
    # the provider), then a market buy of 1 BTC through each API
    v1_answers, v2_answers, reads = [], [], []
    for step, second in enumerate(range(11, 130, 20)):
        if kind == "redis-killed-then-restarted" and step == 1:
            redis.kill()
        if kind == "redis-killed-then-restarted" and step == 3:
            redis.start()
        with at(second):
            reads += [anonymous.get(LATEST_QUOTES, {"symbols": "BTC/USD"}).status_code for _ in range(50)]
            for _ in range(5):
                shown = client.get("/api/v1/assets/BTC/").json()
                reads.append((shown["current_price"], shown["price_stale"]))
            response = client.post("/api/v1/orders/", BUY_ONE_BTC, format="json")
            v1_answers.append((response.status_code, response.json().get("error", {}).get("code")))
            try:
                alpaca.submit_order(
                    MarketOrderRequest(symbol="BTC/USD", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
                )
                v2_answers.append(201)
            except APIError as error:
                v2_answers.append(error.status_code)

    # then: every order refused, nothing bought, the reads all served the last good price, stale
    assert v1_answers == [(503, "price_unavailable")] * 6
    assert v2_answers == [503] * 6
    assert set(reads) == {200, ("67000", True)}
    assert coingecko_server.request_count >= 1 + 6 * 55
    assert not Order.objects.filter(user=user, status=Order.Status.COMPLETED).exists()
    assert not AssetBalance.objects.filter(user=user).exists()
    assert UsdBalance.objects.get(user=user).current_balance == cash_before
    assert guard_row() == (Decimal("67000"), Decimal("6.7"), 2)


def test_a_new_level_that_held_for_the_confirmation_time_across_fetches_is_traded_through_both_apis(
    coingecko_server, btc_good_at_67000, trader
):
    # given: a real crash to 20000; orders (each asks the provider) at 11, 12 and 71
    client, (key_id, secret) = trader
    alpaca = APIClient(HTTP_APCA_API_KEY_ID=key_id, HTTP_APCA_API_SECRET_KEY=secret)
    order = {"symbol": "BTC/USD", "qty": "0.1", "side": "buy", "type": "market", "time_in_force": "gtc"}
    coingecko_server.set_price("bitcoin", "20000")
    refused = []
    for second in (11, 12, 71):
        with at(second):
            refused.append(client.post("/api/v1/orders/", {**BUY_ONE_BTC, "quantity": "0.1"}, format="json"))
            refused.append(alpaca.post("/v2/orders", order, format="json"))

    # when: the third counted fetch (11, 71, 131), 120 s after the first
    with at(131):
        v1 = client.post("/api/v1/orders/", {**BUY_ONE_BTC, "quantity": "0.1"}, format="json")
        v2 = alpaca.post("/v2/orders", order, format="json")

    # then
    assert [response.status_code for response in refused] == [503] * 6
    assert (v1.status_code, v1.json()["status"], v1.json()["executed_price"]) == (201, "COMPLETED", "20000")
    assert (v2.status_code, v2.json()["status"], v2.json()["filled_avg_price"]) == (200, "filled", "20000")


# --- the state and its module ------------------------------------------------------------


def test_a_candidate_is_all_its_columns_or_none_and_a_price_is_positive(btc):
    # given
    row = {"asset": btc, "price": Decimal("1"), "as_of": T0, "source": "t", "checked_at": T0}
    candidate = {"candidate_price": Decimal("2"), "candidate_since": T0, "candidate_seen_at": T0}

    # then
    for bad in [
        {"price": Decimal("0")},
        {"candidate_price": Decimal("2")},
        {**candidate, "candidate_fetches": 0},
        {**candidate, "candidate_fetches": 1, "candidate_seen_at": T0 - timedelta(seconds=1)},
        {**candidate, "candidate_fetches": 1, "candidate_price": Decimal("0")},
    ]:
        with pytest.raises(IntegrityError), transaction.atomic():
            LastGoodPrice.objects.create(**{**row, **bad})
    LastGoodPrice.objects.create(**row, **candidate, candidate_fetches=1)
    assert LastGoodPrice.objects.count() == 1


PRICE_MODULES = [
    "quotes",
    "price_http",
    "price_breaker",
    "price_providers",
    "price_guard",
    "price_history",
    "price_events",
    "prices",
]


def test_price_modules_import_each_other_one_way():
    # given: each module, and the assets modules it imports anywhere (in functions too)
    root = Path(__file__).resolve().parents[2] / "assets"
    imports = {}
    for name in PRICE_MODULES:
        tree = ast.parse((root / f"{name}.py").read_text())
        found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        found |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        found |= {
            f"assets.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "assets"
            for alias in node.names
        }
        imports[name] = {module.removeprefix("assets.") for module in found if module.startswith("assets.")}

    # then: a module imports only those before it; the history never the prices that record it
    later = {name: set(PRICE_MODULES[index:]) for index, name in enumerate(PRICE_MODULES)}
    assert {name: imported & later[name] for name, imported in imports.items()} == {
        name: set() for name in PRICE_MODULES
    }
