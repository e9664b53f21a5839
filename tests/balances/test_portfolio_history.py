"""GET /api/v1/portfolio/history/: the portfolio's value over time, rebuilt from the ledgers
and the recorded prices, equal to the cent to a brute-force recomputation."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.services import issue_token
from assets.models import Asset, PriceRecord
from assets.selectors import Timeframe, bucket_start
from balances import history as history_module
from balances.history import MAX_POINTS, Period, get_activities, get_portfolio_history
from balances.models import AccountReset, AssetTransaction, CashTransaction, UsdBalance
from balances.services import adjust_asset_balance, adjust_usd_balance, deposit, withdraw
from core.exceptions import DomainError
from core.money import ZERO, to_cents
from orders.selectors import reconcile_ledger
from orders.services import place_order, reset_account
from orders.validation import OrderRequest
from tests.support.api import error_code

HISTORY = "/api/v1/portfolio/history/"
END = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # a UTC midnight: the end of the histories below


def at(when: datetime):
    return time_machine.travel(when, tick=False)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user=user).key}")
    return client


# --- the brute force ----------------------------------------------------------------------


def brute_force(user, *, first: datetime, last: datetime, step: timedelta) -> dict:
    """The history recomputed the slow, obvious way: for each bucket's close, every ledger
    row before it summed in Python, each holding priced at the last record before it.
    ``first`` is the period's first bucket; an account opened later (its latest reset before
    the last bucket's close, else its first ledger row, or its balance's creation while it
    has none) starts in the bucket it opened in, from its value just after it opened: every
    row up to that instant."""
    cash_rows = list(CashTransaction.objects.filter(user=user).values_list("created_at", "amount", "transaction_type"))
    asset_rows = list(
        AssetTransaction.objects.filter(user=user, status="COMPLETED").values_list(
            "created_at", "asset_id", "transaction_type", "quantity"
        )
    )
    prices = list(PriceRecord.objects.values_list("asset_id", "as_of", "price"))
    first_rows = [row[0] for row in cash_rows + asset_rows]
    resets = list(
        AccountReset.objects.filter(user=user, created_at__lt=last + step).values_list("created_at", flat=True)
    )
    if resets:
        opened = max(resets)  # the history starts over at the account's latest reset
    elif first_rows:
        opened = min(first_rows)
    else:
        opened = UsdBalance.objects.get(user=user).created_at

    def value_at(moment: datetime, *, inclusive: bool = False) -> Decimal:
        def by(when: datetime) -> bool:
            return when <= moment if inclusive else when < moment

        cash = sum((amount for when, amount, _ in cash_rows if by(when)), ZERO)
        quantities: dict[str, Decimal] = {}
        for when, asset_id, kind, quantity in asset_rows:
            if by(when):
                quantities[asset_id] = quantities.get(asset_id, ZERO) + (-quantity if kind == "SELL" else quantity)
        market = ZERO
        for asset_id, quantity in quantities.items():
            seen = [(as_of, price) for a, as_of, price in prices if a == asset_id and by(as_of)]
            if quantity and seen:
                market += to_cents(quantity * max(seen)[1])
        return cash + market

    if opened >= first:
        while first + step <= opened:
            first += step  # no bucket before the one the account opened in
        base = value_at(opened, inclusive=True)
        flow_starts = opened  # the cash it opened with is in the base
        counted = lambda when: when > flow_starts  # noqa: E731
    else:
        base = value_at(first)
        flow_starts = first
        counted = lambda when: when >= flow_starts  # noqa: E731
    if first > last:
        base = ZERO  # opened after the period: nothing to show

    def flows_until(close: datetime) -> Decimal:
        return sum(
            (
                amount
                for when, amount, kind in cash_rows
                if counted(when) and when < close and kind in ("DEPOSIT", "WITHDRAWAL", "ADJUSTMENT")
            ),
            ZERO,
        )

    timestamps, equity, profit_loss, pct = [], [], [], []
    bucket = first
    while bucket <= last:
        value, flows = value_at(bucket + step), flows_until(bucket + step)
        pnl = value - base - flows
        timestamps.append(bucket)
        equity.append(value)
        profit_loss.append(pnl)
        pct.append((pnl * 100 / (base + flows)).quantize(Decimal("0.0001")) if base + flows > 0 else None)
        bucket += step
    return {"timestamp": timestamps, "equity": equity, "profit_loss": profit_loss, "pct": pct, "base": base}


def brute_force_activities(user) -> list[tuple]:
    """The activity feed recomputed from the ledgers, newest first: every asset row (fills,
    adjustments, resets' holdings), and every cash row but a fill's cash side, each with the
    cash it moved and the balance after it."""
    kinds = {"BUY": "FILL", "SELL": "FILL", "ADJUSTMENT": "ASSET_ADJUSTMENT", "RESET": "RESET"}
    feed = [
        (row.created_at, "A", row.pk, kinds[row.transaction_type], row.asset_id, row.quantity, None, None)
        for row in AssetTransaction.objects.filter(user=user, status="COMPLETED")
    ]
    cash_kinds = {"DEPOSIT": "DEPOSIT", "WITHDRAWAL": "WITHDRAWAL", "ADJUSTMENT": "CASH_ADJUSTMENT", "RESET": "RESET"}
    feed += [
        (row.created_at, "C", row.pk, cash_kinds[row.transaction_type], None, None, row.amount, row.balance_after)
        for row in CashTransaction.objects.filter(user=user, transaction_type__in=list(cash_kinds))
    ]
    return [row[3:] for row in sorted(feed, reverse=True)]


def all_activities(user, page_size: int = 4) -> list[tuple]:
    """The feed as get_activities pages it, with what a fill moved left out (the brute force
    reads fills from the asset ledger only)."""
    rows, token = [], None
    while True:
        page = get_activities(user=user, page_token=token, page_size=page_size)
        rows += [
            (a.activity_type.value, a.asset_id, a.quantity, None if a.asset_id else a.net_amount, a.balance_after)
            for a in page
        ]
        if len(page) < page_size:
            return rows
        token = page[-1].activity_id


def period_first(period: Period, timeframe: Timeframe, end: datetime) -> datetime:
    """The first bucket of ``period`` up to ``end``, before any account's opening is applied."""
    return bucket_start(end, timeframe) - timeframe.step * (period.length // timeframe.step - 1)


def as_dict(history) -> dict:
    return {
        "timestamp": history.timestamp,
        "equity": history.equity,
        "profit_loss": history.profit_loss,
        "pct": history.profit_loss_pct,
        "base": history.base_value,
    }


# --- a worked example ---------------------------------------------------------------------


@pytest.fixture
def two_days(make_user, btc, eth, set_price):
    """alice opens 2026-03-01 10:00 (10,000.00); BTC recorded at 100 then; 11:30 buys 10 BTC
    at 100 (1,000.00); BTC 110 at 14:00; 2026-03-02 09:00 deposits 500, BTC 90 at 12:00,
    sells 5 BTC at 90 at 12:00; ETH is never held."""
    with at(datetime(2026, 3, 1, 10, tzinfo=UTC)):
        alice = make_user("alice")
        set_price("BTC", "100")
        set_price("ETH", "2000")
    with at(datetime(2026, 3, 1, 11, 30, tzinfo=UTC)):
        set_price("BTC", "100")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("10")))
    with at(datetime(2026, 3, 1, 14, tzinfo=UTC)):
        set_price("BTC", "110")
    with at(datetime(2026, 3, 2, 9, tzinfo=UTC)):
        deposit(user=alice, amount=Decimal("500.00"))
    with at(datetime(2026, 3, 2, 12, tzinfo=UTC)):
        set_price("BTC", "90")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="SELL", quantity=Decimal("5")))
    return alice


def test_daily_history_starts_on_the_day_the_account_opened_from_its_opening_deposit(two_days):
    # when the week to 2026-03-03 00:00 in days
    response = client_for(two_days).get(HISTORY, {"period": "1W", "timeframe": "1D", "date_end": END.isoformat()})

    # then no day before 2026-03-01 (alice did not exist), and the base is her 10,000.00:
    # 10,000 - 1,000 + 10 x 110; then 9,000 + 500 + 450 + 5 x 90
    assert response.status_code == 200
    assert response.json() == {
        "timestamp": ["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"],
        "equity": ["10100.00", "10400.00", "10400.00"],
        "profit_loss": ["100.00", "-100.00", "-100.00"],
        "profit_loss_pct": ["1.00", "-0.95", "-0.95"],
        "cash_flow": ["0.00", "500.00", "500.00"],
        "base_value": "10000.00",
        "timeframe": "1D",
        "period": "1W",
    }


def test_hourly_history_starts_in_the_hour_the_account_opened(two_days):
    # when 1D of hours to 2026-03-01 14:00, i.e. from 2026-02-28 15:00; alice opened at 10:00
    body = client_for(two_days).get(HISTORY, {"period": "1D", "timeframe": "1H", "date_end": "2026-03-01T14:00:00Z"})

    # then 10:00 to 14:00, from 10,000.00; BTC at 110 counts from the 14:00 bucket's close
    body = body.json()
    assert body["timestamp"] == [f"2026-03-01T{hour}:00:00Z" for hour in (10, 11, 12, 13, 14)]
    assert body["equity"] == ["10000.00", "10000.00", "10000.00", "10000.00", "10100.00"]
    assert (body["base_value"], body["cash_flow"][-1], body["profit_loss"][-1]) == ("10000.00", "0.00", "100.00")


def test_a_history_that_ends_before_the_account_opened_is_empty(two_days):
    # when the day before alice opened
    body = client_for(two_days).get(HISTORY, {"period": "1D", "timeframe": "1H", "date_end": "2026-02-28T12:00:00Z"})

    # then
    assert body.json() == {
        "timestamp": [],
        "equity": [],
        "profit_loss": [],
        "profit_loss_pct": [],
        "cash_flow": [],
        "base_value": "0.00",
        "timeframe": "1H",
        "period": "1D",
    }


def test_an_account_opened_with_a_holding_starts_from_its_value_then(make_user, staff_user, btc, set_price, settings):
    # given bob, opened without cash at 2026-03-02 10:00; at 10:20 staff gives him 2 BTC,
    # recorded at 100 that instant; BTC 150 at 10:40
    settings.INITIAL_USD_BALANCE = Decimal("0")
    with at(datetime(2026, 3, 2, 10, tzinfo=UTC)):
        bob = make_user("bob")
    with at(datetime(2026, 3, 2, 10, 20, tzinfo=UTC)):
        set_price("BTC", "100")
        adjust_asset_balance(user=bob, asset=btc, quantity=Decimal("2"), reason="migrated", actor=staff_user)
    with at(datetime(2026, 3, 2, 10, 40, tzinfo=UTC)):
        set_price("BTC", "150")

    # when
    history = get_portfolio_history(user=bob, period=Period.DAY_1, timeframe=Timeframe.HOUR_1, end=END)

    # then it starts with the holding (his first ledger row) at 2 x 100, and gains 100
    assert history.timestamp[0] == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert history.base_value == Decimal("200.00")
    assert (history.equity[0], history.profit_loss[0], history.profit_loss_pct[0]) == (
        Decimal("300.00"),
        Decimal("100.00"),
        Decimal("50.0000"),
    )


def test_an_account_without_ledger_rows_starts_when_its_balance_opened(make_user, settings):
    # given carol, opened without cash on 2026-03-01 at 10:00
    settings.INITIAL_USD_BALANCE = Decimal("0")
    with at(datetime(2026, 3, 1, 10, tzinfo=UTC)):
        carol = make_user("carol")

    # when
    history = get_portfolio_history(user=carol, period=Period.WEEK_1, timeframe=Timeframe.DAY_1, end=END)

    # then
    assert history.timestamp == [datetime(2026, 3, day, tzinfo=UTC) for day in (1, 2, 3)]
    assert (history.equity, history.base_value) == ([Decimal("0.00")] * 3, Decimal("0.00"))


def test_hourly_history_starts_from_the_value_when_the_period_opens(two_days):
    # when 1D of hours to 2026-03-02 13:00, i.e. from 2026-03-01 14:00 (alice opened before)
    body = client_for(two_days).get(HISTORY, {"period": "1D", "timeframe": "1H", "date_end": "2026-03-02T13:00:00Z"})

    # then the base is the value at 14:00 (BTC still 100), the first close 15:00 (BTC 110)
    body = body.json()
    assert body["base_value"] == "10000.00"
    assert (body["timestamp"][0], body["timestamp"][-1]) == ("2026-03-01T14:00:00Z", "2026-03-02T13:00:00Z")
    assert len(body["timestamp"]) == 24
    assert body["equity"][0] == "10100.00"
    assert body["equity"][-1] == "10400.00"
    assert body["profit_loss"][-1] == "-100.00"  # the 500.00 deposited is not profit
    assert body["cash_flow"][-1] == "500.00"


def test_the_history_ends_at_the_current_portfolio_value(two_days, set_price):
    from balances.selectors import calculate_portfolio_value

    # when both are asked at the same instant
    with at(datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)):
        set_price("BTC", "90")  # still 90 (and the minute's price is recorded already)
        history = get_portfolio_history(user=two_days, period=Period.DAY_1, timeframe=Timeframe.MIN_5)
        portfolio = calculate_portfolio_value(user=two_days)

    # then
    assert history.equity[-1] == portfolio.total_portfolio_value == Decimal("10400.00")


def test_period_all_starts_at_the_first_ledger_row(two_days):
    with at(datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)):
        history = get_portfolio_history(user=two_days, period=Period.ALL)
    assert history.timeframe is Timeframe.DAY_1
    assert history.timestamp == [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)]
    assert history.equity == [Decimal("10100.00"), Decimal("10400.00")]


def test_a_user_with_no_ledger_rows_has_a_flat_history(make_user, settings):
    settings.INITIAL_USD_BALANCE = Decimal("0")
    nobody = make_user("nobody")
    history = get_portfolio_history(user=nobody, period=Period.ALL)
    assert (len(history.timestamp), history.equity, history.base_value) == (1, [Decimal("0.00")], Decimal("0.00"))


# --- a reset: the history starts over -------------------------------------------------------


@pytest.fixture
def reset_day(make_user, btc, set_price):
    """alice opens 2026-03-01 10:00 (10,000.00), buys 10 BTC at 100 at 11:30, BTC 110 at
    14:00; 2026-03-02 09:00 deposits 500; 10:00 resets to 2,000.00; 11:00 buys 5 BTC at 100;
    BTC 90 at 12:00; 13:00 deposits 100."""
    with at(datetime(2026, 3, 1, 10, tzinfo=UTC)):
        alice = make_user("alice")
        set_price("BTC", "100")
    with at(datetime(2026, 3, 1, 11, 30, tzinfo=UTC)):
        set_price("BTC", "100")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("10")))
    with at(datetime(2026, 3, 1, 14, tzinfo=UTC)):
        set_price("BTC", "110")
    with at(datetime(2026, 3, 2, 9, tzinfo=UTC)):
        deposit(user=alice, amount=Decimal("500.00"))
    with at(datetime(2026, 3, 2, 10, tzinfo=UTC)):
        reset_account(user=alice, cash=Decimal("2000.00"))
    with at(datetime(2026, 3, 2, 11, tzinfo=UTC)):
        set_price("BTC", "100")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("5")))
    with at(datetime(2026, 3, 2, 12, tzinfo=UTC)):
        set_price("BTC", "90")
    with at(datetime(2026, 3, 2, 13, tzinfo=UTC)):
        deposit(user=alice, amount=Decimal("100.00"))
    return alice


def test_a_reset_starts_the_history_over_from_the_cash_it_set(reset_day):
    # when the week to 2026-03-03 00:00 in days
    response = client_for(reset_day).get(HISTORY, {"period": "1W", "timeframe": "1D", "date_end": END.isoformat()})

    # then nothing before the reset's day; the base is its 2,000.00 (the 500.00 deposited
    # before it is no cash flow of this history); then 1,600 cash + 5 x 90
    assert response.status_code == 200
    assert response.json() == {
        "timestamp": ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"],
        "equity": ["2050.00", "2050.00"],
        "profit_loss": ["-50.00", "-50.00"],
        "profit_loss_pct": ["-2.38", "-2.38"],
        "cash_flow": ["100.00", "100.00"],
        "base_value": "2000.00",
        "timeframe": "1D",
        "period": "1W",
    }


def test_hourly_history_starts_in_the_hour_of_the_reset(reset_day):
    # when a day of hours to 2026-03-02 12:00
    history = get_portfolio_history(
        user=reset_day, period=Period.DAY_1, timeframe=Timeframe.HOUR_1, end=datetime(2026, 3, 2, 12, tzinfo=UTC)
    )

    # then from the 10:00 bucket: 2,000.00; the buy at 11:00 at 100 changes nothing; BTC at 90
    assert history.timestamp == [datetime(2026, 3, 2, hour, tzinfo=UTC) for hour in (10, 11, 12)]
    assert history.equity == [Decimal("2000.00"), Decimal("2000.00"), Decimal("1950.00")]
    assert (history.base_value, history.cash_flow) == (Decimal("2000.00"), [Decimal("0.00")] * 3)


def test_a_history_that_ends_before_the_reset_is_the_account_before_it(reset_day):
    # when a day of hours to 2026-03-02 09:30, before the reset
    history = get_portfolio_history(
        user=reset_day, period=Period.DAY_1, timeframe=Timeframe.HOUR_1, end=datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    )

    # then the account as it was: from its opening, 9,500 cash and 10 BTC at 110 at the end
    assert (history.timestamp[0], history.base_value) == (datetime(2026, 3, 1, 10, tzinfo=UTC), Decimal("10000.00"))
    assert (history.equity[-1], history.cash_flow[-1], history.profit_loss[-1]) == (
        Decimal("10600.00"),
        Decimal("500.00"),
        Decimal("100.00"),
    )


def test_period_all_starts_at_the_latest_reset(reset_day):
    with at(datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)):
        history = get_portfolio_history(user=reset_day, period=Period.ALL)
    assert (history.timestamp, history.base_value) == ([datetime(2026, 3, 2, tzinfo=UTC)], Decimal("2000.00"))


def test_a_reset_before_the_period_leaves_the_base_the_value_when_the_period_opens(reset_day):
    # when a day of hours to 2026-03-03 12:00, which opens after the reset
    history = get_portfolio_history(
        user=reset_day, period=Period.DAY_1, timeframe=Timeframe.HOUR_1, end=datetime(2026, 3, 3, 12, tzinfo=UTC)
    )

    # then from 2026-03-02 13:00: 1,500 cash + 5 x 90, and the 100.00 deposited at 13:00 is flow
    assert history.timestamp[0] == datetime(2026, 3, 2, 13, tzinfo=UTC)
    assert (history.base_value, history.equity[0], history.cash_flow[0]) == (
        Decimal("1950.00"),
        Decimal("2050.00"),
        Decimal("100.00"),
    )


@pytest.mark.parametrize(("period", "timeframe"), [("1W", "1D"), ("1D", "1H"), ("1W", "15Min"), ("1D", "1Min")])
def test_the_history_around_a_reset_equals_its_brute_force_recomputation(reset_day, period, timeframe):
    period, timeframe = Period(period), Timeframe(timeframe)
    for end in (datetime(2026, 3, 2, 9, 59, tzinfo=UTC), datetime(2026, 3, 2, 10, tzinfo=UTC), END):
        history = get_portfolio_history(user=reset_day, period=period, timeframe=timeframe, end=end)
        last = bucket_start(end, timeframe)
        assert as_dict(history) == brute_force(
            reset_day, first=period_first(period, timeframe, end), last=last, step=timeframe.step
        )


def statements(captured) -> list[str]:
    """Each statement's first words (a savepoint's name left out): enough to tell them apart."""
    words = [q["sql"].split()[:2] for q in captured.captured_queries]
    return [w[0] if w[0] == "SAVEPOINT" else " ".join(w) for w in words]


@pytest.mark.parametrize(("period", "timeframe"), [("1D", "1H"), ("1M", "1D"), ("1W", "1Min")])
def test_the_history_is_one_statement_after_authentication(two_days, period, timeframe):
    # given
    client = client_for(two_days)

    # when
    with CaptureQueriesContext(connection) as captured:
        response = client.get(HISTORY, {"period": period, "timeframe": timeframe, "date_end": END.isoformat()})

    # then the token with its user (accounts.selectors), and the history in its own
    # transaction (a savepoint inside the test's)
    assert response.status_code == 200
    assert statements(captured) == [
        'SELECT m."key",',
        "SAVEPOINT",
        "SET LOCAL",
        "WITH opened",
        "RELEASE SAVEPOINT",
    ]


def test_period_all_costs_one_more_query_for_where_to_start(two_days):
    client = client_for(two_days)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(HISTORY, {"period": "all"}).status_code == 200
    assert statements(captured)[1:] == [
        "SELECT coalesce(",
        "SAVEPOINT",
        "SET LOCAL",
        "WITH opened",
        "RELEASE SAVEPOINT",
    ]


def test_defaults_are_a_month_of_days(two_days):
    body = client_for(two_days).get(HISTORY).json()
    assert (body["period"], body["timeframe"], len(body["timestamp"])) == ("1M", "1D", 30)


def test_another_users_history_is_404_and_staff_may_read_it(two_days, make_user, support_staff):
    # given
    bob = make_user("bob")

    # when
    response = client_for(bob).get(HISTORY, {"username": "alice"})
    staff = client_for(support_staff).get(HISTORY, {"username": "alice", "period": "all", "date_end": END.isoformat()})

    # then
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert staff.json()["equity"][-1] == "10400.00"


def test_the_history_needs_authentication(api_client, db):
    response = api_client.get(HISTORY)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "2W"}, "period"),
        ({"period": ""}, "period"),
        ({"perod": "1W"}, "perod"),
        ({"timeframe": "1Sec"}, "timeframe"),
        ({"date_end": "tomorrow"}, "date_end"),
        ({"period": "1M", "timeframe": "1Min"}, "timeframe"),  # 43,200 points
        ({"period": "1A", "timeframe": "5Min"}, "timeframe"),
    ],
)
def test_bad_input_is_a_400_in_the_error_shape(two_days, params, field):
    response = client_for(two_days).get(HISTORY, params)
    assert response.status_code == 400
    assert error_code(response) == ("unknown_field" if field == "perod" else "validation_error")
    assert list(response.json()["error"]["details"]) == [field]


def test_a_week_of_minutes_is_the_most_points_allowed(make_user):
    with at(END - timedelta(days=8)):
        old_hand = make_user("old_hand")
    history = get_portfolio_history(user=old_hand, period=Period.WEEK_1, timeframe=Timeframe.MIN_1, end=END)
    assert len(history.timestamp) == MAX_POINTS


def test_holdings_are_valued_to_the_cent_half_even_like_the_portfolio(make_user, staff_user, make_asset, set_price):
    # given 0.5 of an asset at 0.05 (0.025 USD: half even 0.02, half up 0.03) and 1.5 at 0.01
    cheap = make_asset("CHEAP", quantity_decimals=1)
    penny = make_asset("PENNY", quantity_decimals=1)
    with at(END - timedelta(hours=2)):
        alice = make_user("alice")
        set_price("CHEAP", "0.05")
        set_price("PENNY", "0.01")
        adjust_asset_balance(user=alice, asset=cheap, quantity=Decimal("0.5"), reason="r", actor=staff_user)
        adjust_asset_balance(user=alice, asset=penny, quantity=Decimal("1.5"), reason="r", actor=staff_user)

    # when
    history = get_portfolio_history(user=alice, period=Period.DAY_1, timeframe=Timeframe.HOUR_1, end=END)

    # then 10,000.00 + 0.02 + 0.02
    assert history.equity[-1] == Decimal("10000.04")


def test_a_price_recorded_at_a_buckets_close_belongs_to_the_next_bucket(make_user, btc, set_price):
    # given BTC 100 from 10:30, bought at 10:30, and 200 recorded at 11:00:00 exactly
    with at(datetime(2026, 3, 2, 10, 30, tzinfo=UTC)):
        alice = make_user("alice")
        set_price("BTC", "100")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("1")))
    with at(datetime(2026, 3, 2, 11, tzinfo=UTC)):
        set_price("BTC", "200")

    # when
    history = get_portfolio_history(
        user=alice, period=Period.DAY_1, timeframe=Timeframe.HOUR_1, end=datetime(2026, 3, 2, 11, 30, tzinfo=UTC)
    )

    # then the 10:00 bucket closes before 11:00's price; the 11:00 bucket has it
    assert history.timestamp[-2:] == [datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 3, 2, 11, tzinfo=UTC)]
    assert history.equity[-2:] == [Decimal("10000.00"), Decimal("10100.00")]


@pytest.mark.parametrize("timeframe", [Timeframe.MIN_1, Timeframe.MIN_5, Timeframe.HOUR_1])
def test_the_last_price_before_the_period_values_its_start_and_carries_over_empty_buckets(
    make_user, btc, set_price, timeframe
):
    # given 1 BTC bought at 100, then 200 recorded within the bucket before the day's period
    # opens, then nothing until 150 at 06:00:10
    first = bucket_start(END - Period.DAY_1.length, timeframe) + timeframe.step
    with at(first - timedelta(days=1)):
        alice = make_user("alice")
        set_price("BTC", "100")
        place_order(user=alice, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("1")))
    with at(first - timedelta(seconds=30)):
        set_price("BTC", "200")
    with at(datetime(2026, 3, 2, 6, 0, 10, tzinfo=UTC)):
        set_price("BTC", "150")

    # when
    history = get_portfolio_history(user=alice, period=Period.DAY_1, timeframe=timeframe, end=END)

    # then 9,900 cash and BTC at 200 from the start, at 150 from the 06:00 bucket on
    equity = dict(zip(history.timestamp, history.equity, strict=True))
    assert history.timestamp[0] == first
    assert history.base_value == Decimal("10100.00")
    assert equity[first] == equity[datetime(2026, 3, 2, 5, tzinfo=UTC)] == Decimal("10100.00")
    assert equity[datetime(2026, 3, 2, 6, tzinfo=UTC)] == equity[END] == Decimal("10050.00")


# --- the property: any history equals its brute-force recomputation -----------------------

_counter = itertools.count()

EVENTS = st.lists(
    st.tuples(
        # whole minutes after the start, so that many fall on a bucket's close exactly
        st.integers(min_value=1, max_value=36 * 60).map(lambda minutes: minutes * 60),
        st.sampled_from(["deposit", "withdraw", "buy", "sell", "price", "cash_adjust", "asset_adjust", "reset"]),
        st.integers(min_value=0, max_value=1),  # which asset
        st.decimals(min_value=Decimal("0.001"), max_value=Decimal("3"), places=3),  # quantity or amount scale
        st.decimals(min_value=Decimal("0.5"), max_value=Decimal("2"), places=6),  # price multiplier
    ),
    max_size=14,
)


def random_ledger(events, *, make_user, staff_user, set_price, initial=Decimal("10000.00")):
    """A fresh user (opened at START with ``initial`` USD) and two fresh assets (examples
    share the test's transaction), and a random day and a half of deposits, withdrawals,
    market buys and sells at random prices, adjustments, resets and price records, written
    through the services at their instants."""
    n = next(_counter)
    assets = [
        Asset.objects.create(asset_id=f"PA{n}", name="a", quantity_decimals=3, reference_price=Decimal("123.45")),
        Asset.objects.create(asset_id=f"PB{n}", name="b", quantity_decimals=6, reference_price=Decimal("0.987654")),
    ]
    cache.clear()
    with at(START), override_settings(INITIAL_USD_BALANCE=initial):
        user = make_user(f"prop{n}")
        for asset in assets:
            set_price(asset.asset_id, str(asset.reference_price))
    for offset, kind, which, scale, move in sorted(events, key=lambda e: e[0]):
        asset = assets[which]
        with at(START + timedelta(seconds=offset)):
            cache.clear()  # every event's own fresh quote
            price = (asset.reference_price * move).quantize(Decimal("0.000001"))
            set_price(asset.asset_id, str(price))
            quantity = (scale * (10 if which == 0 else 1000)).quantize(Decimal(1).scaleb(-asset.quantity_decimals))
            try:
                if kind == "deposit":
                    deposit(user=user, amount=(scale * 1000).quantize(Decimal("0.01")))
                elif kind == "withdraw":
                    withdraw(user=user, amount=(scale * 1000).quantize(Decimal("0.01")))
                elif kind in ("buy", "sell"):
                    place_order(
                        user=user,
                        request=OrderRequest(asset_id=asset.asset_id, order_type=kind.upper(), quantity=quantity),
                    )
                elif kind == "cash_adjust":
                    adjust_usd_balance(user=user, amount=-scale, reason="r", actor=staff_user)
                elif kind == "asset_adjust":
                    adjust_asset_balance(user=user, asset=asset, quantity=quantity, reason="r", actor=staff_user)
                elif kind == "reset":
                    reset_account(user=user, cash=(scale * 1000).quantize(Decimal("0.01")))
            except DomainError:
                pass  # refused: nothing moved, which the history must show too
    return user


START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
# from minutes over a day to days over a week
SHAPES = st.sampled_from(
    [
        (Period.DAY_1, Timeframe.MIN_1),
        (Period.DAY_1, Timeframe.MIN_5),
        (Period.DAY_1, Timeframe.MIN_15),
        (Period.WEEK_1, Timeframe.MIN_15),
        (Period.DAY_1, Timeframe.HOUR_1),
        (Period.WEEK_1, Timeframe.HOUR_1),
        (Period.WEEK_1, Timeframe.DAY_1),
    ]
)


# An account opened with the usual deposit, or with nothing: then it opens with whatever
# its first event writes (a deposit, a buy refused for want of cash writes nothing, an
# asset adjustment valued at the price recorded that instant), at a random minute.
OPENINGS = st.sampled_from([Decimal("10000.00"), Decimal("0")])


@PROPERTY_SETTINGS
@given(events=EVENTS, shape=SHAPES, end_hours=st.integers(min_value=12, max_value=40), initial=OPENINGS)
def test_any_history_equals_its_brute_force_recomputation(
    make_user, staff_user, set_price, events, shape, end_hours, initial
):
    # given
    user = random_ledger(events, make_user=make_user, staff_user=staff_user, set_price=set_price, initial=initial)

    # when the history ends somewhere in (or after) them, and starts before or among them
    period, timeframe = shape
    end = START + timedelta(hours=end_hours)
    history = get_portfolio_history(user=user, period=period, timeframe=timeframe, end=end)

    # then
    last = bucket_start(end, timeframe)
    assert history.timestamp[-1] == last
    assert as_dict(history) == brute_force(
        user, first=period_first(period, timeframe, end), last=last, step=timeframe.step
    )
    # and the feed of activities is the ledgers' rows, to the cent, resets included
    assert all_activities(user) == brute_force_activities(user)
    assert reconcile_ledger() == []


@PROPERTY_SETTINGS
@given(events=EVENTS, shape=SHAPES, end_hours=st.integers(min_value=12, max_value=40))
def test_scanning_the_prices_gives_the_history_probing_them_gives(
    make_user, staff_user, set_price, monkeypatch, events, shape, end_hours
):
    # given (each timeframe is answered by one of the two; here both answer every one)
    user = random_ledger(events, make_user=make_user, staff_user=staff_user, set_price=set_price)
    period, timeframe = shape
    end = START + timedelta(hours=end_hours)

    # when
    histories = []
    for sql in (history_module.HISTORY_BY_SCAN_SQL, history_module.HISTORY_BY_PROBE_SQL):
        monkeypatch.setattr(history_module, "history_sql", lambda timeframe, sql=sql: sql)
        histories.append(get_portfolio_history(user=user, period=period, timeframe=timeframe, end=end))

    # then
    scanned, probed = histories
    assert scanned == probed


def test_minutes_scan_the_prices_and_longer_buckets_probe_them(settings):
    # given the default recording window, one minute
    settings.PRICE_RECORD_SECONDS = 60

    # then up to five records a bucket are read, beyond that probed
    assert [history_module.history_sql(timeframe) is history_module.HISTORY_BY_SCAN_SQL for timeframe in Timeframe] == [
        True,  # 1Min
        True,  # 5Min
        False,  # 15Min
        False,  # 1H
        False,  # 1D
    ]
