"""The recorded price history: one row per asset per window, written from the one place
quotes are stored, and kept bounded by prune_price_history."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from assets.models import LastGoodPrice, PriceRecord
from assets.price_history import backfill_simulated_prices, prune_price_history, record_quotes, slot_start
from assets.price_providers import SIMULATED_BUCKET_SECONDS, SimulatedProvider
from assets.prices import Quote, get_quotes, store_quotes
from orders.validation import OrderRequest

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)  # a window boundary (and a UTC noon)


def quote(asset_id: str, price: str, at: datetime, source: str = "test") -> Quote:
    return Quote(asset_id=asset_id, price=Decimal(price), as_of=at, source=source)


def recorded(asset_id: str = "BTC") -> list[tuple[Decimal, datetime]]:
    return list(PriceRecord.objects.filter(asset_id=asset_id).order_by("as_of").values_list("price", "as_of"))


def inserts(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "INSERT INTO assets_pricerecord" in q["sql"]]


def test_a_stored_quote_is_recorded_once_per_asset_and_window(btc, eth):
    # when three quotes of one minute, then one of the next
    store_quotes([quote("BTC", "50000", T0), quote("ETH", "2500", T0 + timedelta(seconds=5))])
    store_quotes([quote("BTC", "50010", T0 + timedelta(seconds=59))])
    store_quotes([quote("BTC", "50020", T0 + timedelta(seconds=60))])

    # then the window's first price stands; the next window has its own row
    assert recorded("BTC") == [(Decimal("50000"), T0), (Decimal("50020"), T0 + timedelta(seconds=60))]
    assert recorded("ETH") == [(Decimal("2500"), T0 + timedelta(seconds=5))]
    row = PriceRecord.objects.get(asset_id="ETH")
    assert (row.source, row.slot) == ("test", T0)


def test_a_quote_of_an_already_recorded_window_costs_no_query(btc):
    # given
    store_quotes([quote("BTC", "50000", T0)])

    # when
    with CaptureQueriesContext(connection) as captured:
        written = record_quotes([quote("BTC", "50001", T0 + timedelta(seconds=30))])

    # then
    assert (written, len(captured.captured_queries)) == (0, 0)


def test_processes_recording_one_window_at_once_leave_one_row(btc):
    # given another process recorded this window (its cache key is not ours)
    record_quotes([quote("BTC", "50000", T0)])
    cache.clear()

    # when
    written = record_quotes([quote("BTC", "50005", T0 + timedelta(seconds=1))])

    # then the unique (asset, slot) constraint settled it, without an error
    assert written == 0
    assert recorded("BTC") == [(Decimal("50000"), T0)]


def test_quotes_that_cannot_be_recorded_are_skipped_not_raised(btc):
    # when an unknown asset, a zero price and a price too large for the column
    written = record_quotes(
        [
            quote("NOPE", "1", T0),
            quote("BTC", "0", T0),
            quote("BTC", "1" + "0" * 18, T0 + timedelta(seconds=60)),
        ]
    )

    # then
    assert written == 0
    assert PriceRecord.objects.count() == 0


def test_the_database_holds_one_row_per_asset_and_slot_and_positive_prices(btc):
    # given
    PriceRecord.objects.create(asset=btc, price=Decimal("1"), as_of=T0, source="test", slot=T0)

    # then
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceRecord.objects.create(asset=btc, price=Decimal("2"), as_of=T0 + timedelta(seconds=3), source="t", slot=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceRecord.objects.create(asset=btc, price=Decimal("0"), as_of=T0 + timedelta(hours=1), source="t", slot=T0)
    later = T0 + timedelta(hours=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceRecord.objects.create(asset=btc, price=Decimal("1"), as_of=later, source="t", slot=later + timedelta(1))
    assert PriceRecord.objects.count() == 1


def test_the_recording_window_follows_the_setting(settings, btc):
    # given
    settings.PRICE_RECORD_SECONDS = 300

    # when quotes 1 and 4 minutes into a five-minute window, then 5 minutes in
    for minutes in (1, 4, 5):
        store_quotes([quote("BTC", str(100 + minutes), T0 + timedelta(minutes=minutes))])

    # then
    assert recorded("BTC") == [
        (Decimal("101"), T0 + timedelta(minutes=1)),
        (Decimal("105"), T0 + timedelta(minutes=5)),
    ]
    assert slot_start(T0 + timedelta(minutes=4, seconds=59), 300) == T0


def test_fetching_a_price_records_it_and_a_cached_price_does_not(settings, btc, coingecko_server):
    # given
    coingecko_server.set_price("bitcoin", "64000.5", updated_at=int(T0.timestamp()))

    # when fetched from the provider, then read from the cache
    with time_machine.travel(T0 + timedelta(seconds=2), tick=False):
        get_quotes([btc])
        with CaptureQueriesContext(connection) as captured:
            get_quotes([btc])

    # then
    assert recorded("BTC") == [(Decimal("64000.5"), T0)]
    assert PriceRecord.objects.get().source == "coingecko"
    assert inserts(captured) == []


def test_an_order_on_a_cached_price_writes_no_price_history(user, btc, set_price):
    from orders.services import place_order

    # given
    set_price("BTC", "50000")

    # when
    with CaptureQueriesContext(connection) as captured:
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))

    # then
    assert inserts(captured) == []
    assert PriceRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the command manages its own connection, as in production
def test_process_orders_records_every_active_asset_while_it_runs(settings, btc, eth, make_asset, monkeypatch):
    # given an asset nobody has an order for, and one suspended; no pass of this process yet
    monkeypatch.setattr("assets.prices._next_market_refresh", 0.0)
    settings.PRICE_PROVIDER = "simulated"
    make_asset("DOGE", reference_price=Decimal("0.1"), is_active=False)

    # when
    call_command("process_orders", "--once", stdout=io.StringIO())

    # then each active asset has the simulated market's price of that instant
    rows = list(PriceRecord.objects.order_by("asset_id"))
    provider = SimulatedProvider()
    assert [(r.asset_id, r.source) for r in rows] == [("BTC", "simulated"), ("ETH", "simulated")]
    for row, asset in zip(rows, (btc, eth), strict=True):
        assert row.price == provider.price_at(asset, int(row.as_of.timestamp()) // SIMULATED_BUCKET_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_process_orders_asks_for_new_prices_as_often_as_a_price_may_be_reused(settings, btc, monkeypatch):
    # given: prices reused for one second, recorded once a minute (the stream's subscribers see
    # a quote only when something asks the provider)
    monkeypatch.setattr("assets.prices._next_market_refresh", 0.0)
    settings.PRICE_PROVIDER = "simulated"
    settings.PRICE_CACHE_SECONDS = 1
    settings.PRICE_RECORD_SECONDS = 60
    call_command("process_orders", "--once", stdout=io.StringIO())
    first_check = LastGoodPrice.objects.get(asset=btc).checked_at

    # when: a pass once the price may no longer be reused
    time.sleep(1.1)
    call_command("process_orders", "--once", stdout=io.StringIO())

    # then: the provider was asked again, not only once a recording window
    assert LastGoodPrice.objects.get(asset=btc).checked_at > first_check


def test_backfilled_simulated_history_is_what_the_provider_quotes(settings, btc):
    # given
    settings.PRICE_PROVIDER = "simulated"

    # when three minutes are backfilled, then the provider is asked live at the third
    written = backfill_simulated_prices(assets=[btc], start=T0, end=T0 + timedelta(minutes=3))
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        live = SimulatedProvider().fetch([btc])["BTC"]

    # then
    assert written == 3
    assert [as_of for _, as_of in recorded("BTC")] == [T0 + timedelta(minutes=m) for m in range(3)]
    assert recorded("BTC")[2] == (live.price, live.as_of)


def _minutes(asset, start: datetime, count: int, *, step=timedelta(minutes=1)) -> None:
    PriceRecord.objects.bulk_create(
        PriceRecord(asset=asset, price=Decimal(100 + i), as_of=start + i * step, source="test", slot=start + i * step)
        for i in range(count)
    )


def test_pruning_thins_old_history_to_each_days_last_price_and_keeps_the_recent(btc, eth):
    # given 40 days ago: three prices on one day (the last 23:59), two the next; yesterday's: untouched
    now = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)
    old_day = datetime(2026, 2, 19, tzinfo=UTC)
    _minutes(btc, old_day + timedelta(hours=23, minutes=57), 3)
    _minutes(btc, old_day + timedelta(days=1, hours=1), 2)
    _minutes(eth, old_day + timedelta(hours=2), 1)
    _minutes(btc, now - timedelta(days=1), 5)

    # when
    batches = []
    deleted = prune_price_history(retention_days=30, batch_size=1, now=now, progress=lambda *args: batches.append(args))

    # then
    assert deleted == 3
    assert batches == [("BTC", 1, 1), ("BTC", 1, 2), ("BTC", 1, 3)]
    assert [at for _, at in recorded("BTC")][:2] == [
        old_day + timedelta(hours=23, minutes=59),
        old_day + timedelta(days=1, hours=1, minutes=1),
    ]
    assert PriceRecord.objects.filter(asset=btc, as_of__gte=now - timedelta(days=2)).count() == 5
    assert PriceRecord.objects.filter(asset=eth).count() == 1
    # and again: nothing left to do
    assert prune_price_history(retention_days=30, now=now) == 0


def test_prune_command_reports_progress_and_refuses_nonsense(btc, settings):
    # given rows older than the retention, all in one day
    settings.PRICE_HISTORY_RETENTION_DAYS = 2
    with time_machine.travel(T0, tick=False):
        _minutes(btc, T0 - timedelta(days=5), 4)

        # when
        out = io.StringIO()
        call_command("prune_price_history", "--batch-size", "2", stdout=out)

    # then
    assert out.getvalue().splitlines() == [
        "  BTC: 2 deleted (2 in all)",
        "  BTC: 1 deleted (3 in all)",
        "Deleted 3 price record(s) older than 2 day(s), keeping each day's last price.",
    ]
    assert PriceRecord.objects.count() == 1
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("prune_price_history", "--days", "0", stdout=io.StringIO())
