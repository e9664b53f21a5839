"""Real threads on PostgreSQL racing one account (docs/DESIGN.md, "Lock order": flows never lose an
update and never fill an order twice, whichever process runs them), and the SQL shape
that makes it so: the user lock is taken before any write.

Each thread has its own database connection, closed when the thread ends. Prices live in
the database (each asset's last good price), which the threads share."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from assets.prices import get_trade_quote
from balances.models import AssetBalance, CashTransaction
from core.exceptions import OrderNotCancellable
from orders import settlement
from orders.lock_objects import claim_pending_order
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import OrderFailed, cancel_order, fill_resting_order, place_order, process_resting_orders
from orders.validation import OrderRequest
from tests.support.balances import usd_balance_and_held
from tests.support.threads import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


def market_buy(user, quantity: str = "0.01"):
    def call() -> str:
        try:
            return place_order(
                user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D(quantity))
            ).order.status
        except OrderFailed as error:
            return error.code

    return call


def limit_order(user, order_type: str, quantity: str, price: str) -> Order:
    order = place_order(
        user=user,
        request=OrderRequest(asset_id="BTC", order_type=order_type, quantity=D(quantity), order_price=D(price)),
    )
    assert order.order.status == "PENDING"
    return order.order


# --- (a) one account, many buyers -----------------------------------------------------


def test_racing_market_buys_spend_the_balance_exactly_once(make_user, btc, set_price, settings):
    # given: 2999.99 USD pays for exactly 5 buys of 500.00
    settings.INITIAL_USD_BALANCE = D("2999.99")
    user = make_user("alice")
    set_price("BTC", "50000")

    # when: 20 threads buy 0.01 BTC at the same instant
    results = run_concurrently(*[market_buy(user) for _ in range(20)])

    # then
    assert Counter(results) == {"COMPLETED": 5, "insufficient_funds": 15}
    assert usd_balance_and_held(user) == (D("499.99"), D("0.00"))
    assert AssetBalance.objects.get(user=user, asset=btc).quantity == D("0.05")
    assert Counter(Order.objects.values_list("status", flat=True)) == {"COMPLETED": 5, "FAILED": 15}
    assert set(Order.objects.filter(status="FAILED").values_list("failure_reason", flat=True)) == {
        "Not enough available USD."
    }
    assert (
        list(CashTransaction.objects.filter(transaction_type="BUY").values_list("amount", flat=True))
        == [D("-500.00")] * 5
    )
    assert not CashTransaction.objects.filter(balance_after__lt=0).exists()
    assert reconcile_ledger() == []


# --- (b) several processors over the same resting orders ------------------------------


def test_concurrent_processors_fill_each_crossed_order_exactly_once(make_user, btc, set_price):
    # given: 10 users with 5 resting BUY limits each, 50 orders holding 450.00 apiece
    set_price("BTC", "50000")
    users = [make_user(f"user{i}") for i in range(10)]
    orders = [limit_order(user, "BUY", "0.01", "45000") for user in users for _ in range(5)]
    set_price("BTC", "44000.01")  # crosses all of them; a fill costs 440.0001 -> 440.01

    # when: four copies of process_orders run at once
    reports = run_concurrently(*[process_resting_orders for _ in range(4)])

    # then
    assert all(not isinstance(report, Exception) for report in reports), reports
    assert sum(report.filled for report in reports) == 50
    assert sum(report.expired for report in reports) == 0
    assert set(Order.objects.values_list("status", flat=True)) == {"COMPLETED"}
    per_order = Counter(CashTransaction.objects.filter(transaction_type="BUY").values_list("order_id", flat=True))
    assert per_order == {order.pk: 1 for order in orders}
    for user in users:
        assert usd_balance_and_held(user) == (D("7799.95"), D("0.00"))
        assert AssetBalance.objects.get(user=user, asset=btc).quantity == D("0.05")
    assert reconcile_ledger() == []


# --- (c) cancels racing fills ---------------------------------------------------------


def test_a_cancel_racing_a_fill_has_one_effect_never_both(make_user, btc, set_price):
    # given: 4 buyers with 5 resting BUYs at 51000, 4 sellers with 5 resting SELLs at 49000
    set_price("BTC", "55000")
    buyers = [make_user(f"buyer{i}") for i in range(4)]
    sellers = [make_user(f"seller{i}") for i in range(4)]
    buy_orders = [limit_order(user, "BUY", "0.01", "51000") for user in buyers for _ in range(5)]
    set_price("BTC", "48000")
    for seller in sellers:
        place_order(user=seller, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.05")))  # 2400.00
    sell_orders = [limit_order(user, "SELL", "0.01", "49000") for user in sellers for _ in range(5)]
    everything = buy_orders + sell_orders
    set_price("BTC", "50000")  # now every one of them is crossed

    def canceller(orders: list[Order]) -> Callable[[], int]:
        def call() -> int:
            cancelled = 0
            for order in random.sample(orders, len(orders)):
                try:
                    cancel_order(order=order)
                    cancelled += 1
                except OrderNotCancellable:
                    pass
            return cancelled

        return call

    # when: two processors fill while four threads cancel the same orders
    results = run_concurrently(
        process_resting_orders,
        process_resting_orders,
        *[canceller(everything[i::4]) for i in range(4)],
    )

    # then: every order was either filled once or cancelled, with the matching effects
    assert all(not isinstance(result, Exception) for result in results), results
    statuses = dict(Order.objects.filter(pk__in=[o.pk for o in everything]).values_list("pk", "status"))
    assert set(statuses.values()) <= {"COMPLETED", "CANCELLED"}
    filled = [pk for pk, status in statuses.items() if status == "COMPLETED"]
    cancelled = [pk for pk, status in statuses.items() if status == "CANCELLED"]
    assert results[0].filled + results[1].filled == len(filled)
    assert sum(results[2:]) == len(cancelled)
    rows_per_order = Counter(CashTransaction.objects.filter(order__in=everything).values_list("order_id", flat=True))
    assert rows_per_order == dict.fromkeys(filled, 1)
    for buyer in buyers:
        fills = Order.objects.filter(user=buyer, status="COMPLETED").count()
        assert usd_balance_and_held(buyer) == (D("10000.00") - fills * D("500.00"), D("0.00"))
    for seller in sellers:
        fills = Order.objects.filter(user=seller, status="COMPLETED", order_type="SELL").count()
        assert usd_balance_and_held(seller) == (D("7600.00") + fills * D("500.00"), D("0.00"))
        holding = AssetBalance.objects.get(user=seller, asset=btc)
        assert (holding.quantity, holding.held_quantity) == (D("0.05") - fills * D("0.01"), D("0"))
    assert reconcile_ledger() == []


# --- (d) the SQL of a market buy ------------------------------------------------------


def test_a_market_buy_is_one_statement_that_takes_the_user_lock_first(user, btc, set_price):
    # given: the price as the order reads it (numeric(30, 12): 50000.000000000000)
    set_price("BTC", "50000")
    quote = get_trade_quote(btc)

    # when
    with CaptureQueriesContext(connection) as captured:
        placed = place_order(
            user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"))
        ).order

    # then: validation, the price (no lock), then one statement (inside this test's
    # transaction it also gets a savepoint)
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 3
    assert [shape(sql) for sql in statements[:2]] == ["SELECT assets_asset", "SELECT assets_lastgoodprice"]
    # the third is the settlement's statement itself, with this order's values
    params = settlement.market_buy_params(placed, quote=quote, cost=placed.total_amount, now=placed.created_at)
    with connection.cursor() as cursor:
        assert statements[2] == cursor.cursor.mogrify(settlement.MARKET_BUY_SQL, params)


def test_the_market_buy_takes_the_user_lock_first_and_chains_each_write_to_the_one_before():
    # given the statement's steps, as the settlement module composes them
    buy = settlement.MARKET_BUY_SQL
    debit = buy[: buy.index("), holding AS (")]

    # then the user lock (the USD debit, whose WHERE is the funds check on the newest row
    # version, and the check that the account's fill model is the one the order was priced
    # under) comes first, then the holding, the order and the ledger rows
    assert debit.strip() == (
        "WITH debit AS (\n"
        "    UPDATE balances_usdbalance SET current_balance = current_balance - %(cost)s, updated_at = %(at)s\n"
        "    WHERE user_id = %(user_id)s AND current_balance - held >= %(cost)s AND (SELECT m.updated_at FROM "
        "orders_accountfillmodel m WHERE m.user_id = %(user_id)s) IS NOT DISTINCT FROM %(model_version)s::timestamptz\n"
        "    RETURNING current_balance"
    )
    positions = [
        buy.index(f"{step} AS (\n    {verb} {table}")
        for step, verb, table in [
            ("debit", "UPDATE", "balances_usdbalance"),
            ("holding", "INSERT INTO", "balances_assetbalance"),
            ("placed", "INSERT INTO", "orders_order"),
            ("cash", "INSERT INTO", "balances_cashtransaction"),
        ]
    ]
    assert positions == sorted(positions)
    # and each later step has rows only when the one before it had: the chain forces that order
    assert settlement.add_bought_quantity_sql(source="FROM debit", **settlement._BOUGHT) in buy
    assert settlement._PLACED_SQL.endswith("FROM holding")
    assert settlement._cash_sql(side="BUY", source="FROM debit, placed", order="placed", balance="debit") in buy
    assert settlement._asset_row_sql(side="BUY", source="FROM placed", order="placed") in buy
    assert buy.rstrip().endswith(settlement._FILL_SELECT)


def test_a_resting_fill_locks_the_user_before_any_write(user, btc, set_price):
    # given a resting limit BUY that the market then crosses
    set_price("BTC", "50000")
    order = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000"))
    ).order
    quote = set_price("BTC", "39000")

    # when
    with CaptureQueriesContext(connection) as captured:
        assert fill_resting_order(order_id=order.pk, quote=quote)

    # then
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert [shape(sql) for sql in statements] == [
        "BEGIN",
        "SELECT orders_order FOR NO KEY UPDATE",  # the claim, and the user lock (of the USD balance)
        "WITH",  # the settlement: the compare-and-swap PENDING -> COMPLETED, then every write
        "COMMIT",
    ]
    assert "FOR NO KEY UPDATE OF u" in statements[1]
    # and the settlement's first step is the user lock again (its funds check), before the swap
    assert statements[2].startswith("\nWITH account AS (\n    SELECT user_id FROM balances_usdbalance\n")
    assert statements[2].index("FOR NO KEY UPDATE") < statements[2].index("UPDATE orders_order")


def shape(sql: str) -> str:
    """'SELECT balances_usdbalance FOR NO KEY UPDATE' for a statement: its verb, its table, its lock."""
    verb = sql.split(None, 1)[0]
    if verb in {"BEGIN", "COMMIT", "ROLLBACK", "WITH"}:
        return verb
    match = re.search(r'(?:FROM|INTO|UPDATE) "?(\w+)"?', sql)
    lock = re.search(r"\s(FOR (?:NO KEY )?UPDATE)(?: OF \w+)?\s*$", sql)
    return " ".join(filter(None, [verb, match.group(1) if match else "?", lock.group(1) if lock else None]))


@contextmanager
def claimed_by_another_processor(order: Order):
    """While inside, another process_orders (a thread with its own connection) holds the claim
    of ``order`` in an open transaction."""
    claimed, release = threading.Event(), threading.Event()

    def other_processor():
        with transaction.atomic():
            assert claim_pending_order(order_id=order.pk) is not None
            claimed.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_processor)
    thread.start()
    assert claimed.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.mark.django_db(transaction=True)
def test_a_claimed_order_is_skipped_by_another_processor_without_waiting(make_user, btc, set_price):
    # given a resting order that another process_orders (another connection) has claimed
    set_price("BTC", "50000")
    order = place_order(
        user=make_user("claimant"),
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000")),
    ).order
    # when / then: this processor cannot claim it, and moves on at once
    with claimed_by_another_processor(order), transaction.atomic():
        assert claim_pending_order(order_id=order.pk) is None
    # and once the other transaction ended, the order can be claimed again
    with transaction.atomic():
        assert claim_pending_order(order_id=order.pk).order.pk == order.pk


@pytest.mark.django_db(transaction=True)
def test_a_processor_skips_an_order_another_holds_with_one_query_and_fills_the_next_in_the_same_transaction(
    make_user, btc, set_price
):
    # given two resting BUYs the market crosses, the older one claimed by another processor
    set_price("BTC", "50000")
    held, free = (
        place_order(
            user=make_user(name),
            request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.01"), order_price=D("40000")),
        ).order
        for name in ("first", "second")
    )
    set_price("BTC", "39000")
    with claimed_by_another_processor(held), CaptureQueriesContext(connection) as captured:
        # when
        report = process_resting_orders()

    # then the held order cost one claim, inside the transaction that filled the next one
    statements = [shape(q["sql"]) for q in captured.captured_queries]
    fill = statements.index("WITH")
    assert statements[fill - 3 : fill + 2] == [
        "BEGIN",
        "SELECT orders_order FOR NO KEY UPDATE",  # the held order: no row, no wait
        "SELECT orders_order FOR NO KEY UPDATE",  # the next: claimed, with its user lock
        "WITH",
        "COMMIT",
    ]
    assert (report.filled, report.skipped) == (1, 1)
    assert Order.objects.get(pk=held.pk).status == "PENDING"
    assert Order.objects.get(pk=free.pk).status == "COMPLETED"
