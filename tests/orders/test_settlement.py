"""Every fill passes through one statement of ``orders.settlement`` (docs/DESIGN.md,
"Settlement"): market and resting, BUY and SELL, a replacement filled at once, a stop that
triggers. No ORM path writes a ledger row for a fill, and each statement returns its fill
(the seam a fill's event is announced from) without a query more."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assets.prices import Quote
from balances.models import AssetBalance, AssetTransaction, CashTransaction
from core.exceptions import OrderNoLongerPending
from orders import settlement
from orders.lock_objects import claim_pending_order
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order, process_resting_orders, replace_order
from orders.validation import OrderChanges, OrderRequest

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
LEDGERS = ("balances_cashtransaction", "balances_assettransaction")
FILL_STATEMENTS = (
    settlement.MARKET_BUY_SQL,
    settlement.ARRIVAL_SELL_SQL,
    settlement.RESTING_BUY_SQL,
    settlement.RESTING_SELL_SQL,
)


def order(user, side: str, quantity: str, **prices) -> Order:
    request = OrderRequest(asset_id="BTC", order_type=side, quantity=D(quantity), **prices)
    return place_order(user=user, request=request).order


def market_buy(user, set_price):
    order(user, "BUY", "0.01")


def market_sell(user, set_price):
    order(user, "BUY", "0.02")
    order(user, "SELL", "0.01")


def limit_sell_on_arrival(user, set_price):
    order(user, "BUY", "0.02")
    order(user, "SELL", "0.01", order_price=D("49000"))


def rests_then_fills(name: str, side: str, market: str, **prices):
    """A flow: an order that rests (a SELL's holding bought first), then process_orders fills
    it once the market is at ``market``."""

    def flow(user, set_price):
        if side == "SELL":
            order(user, "BUY", "0.02")
        order(user, side, "0.01", **prices)
        set_price("BTC", market)
        assert process_resting_orders().filled == 1

    flow.__name__ = name
    return flow


resting_buy = rests_then_fills("resting_buy", "BUY", "44000", order_price=D("45000"))
resting_sell = rests_then_fills("resting_sell", "SELL", "56000", order_price=D("55000"))
stop_sell_triggered = rests_then_fills("stop_sell_triggered", "SELL", "44000", stop_price=D("45000"))


def replacement_filled_at_once(user, set_price):
    resting = order(user, "BUY", "0.01", order_price=D("45000"))
    assert replace_order(order=resting, changes=OrderChanges(order_price=D("51000"))).status == "COMPLETED"


def stop_buy_triggered_on_arrival(user, set_price):
    order(user, "BUY", "0.01", stop_price=D("49000"))


def stop_limit_buy_triggered_then_filled(user, set_price):
    order(user, "BUY", "0.01", stop_price=D("52000"), order_price=D("52500"))
    set_price("BTC", "53000")  # triggers; the limit is not crossed: it rests as a limit
    assert process_resting_orders().filled == 0
    set_price("BTC", "52400")
    assert process_resting_orders().filled == 1


@pytest.mark.parametrize(
    ("flow", "statement", "fills"),
    [
        (market_buy, settlement.MARKET_BUY_SQL, 1),
        (market_sell, settlement.ARRIVAL_SELL_SQL, 2),
        (limit_sell_on_arrival, settlement.ARRIVAL_SELL_SQL, 2),
        (resting_buy, settlement.RESTING_BUY_SQL, 1),
        (resting_sell, settlement.RESTING_SELL_SQL, 2),
        (replacement_filled_at_once, settlement.RESTING_BUY_SQL, 1),
        (stop_sell_triggered, settlement.RESTING_SELL_SQL, 2),
        (stop_buy_triggered_on_arrival, settlement.MARKET_BUY_SQL, 1),
        (stop_limit_buy_triggered_then_filled, settlement.RESTING_BUY_SQL, 1),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_every_fill_runs_one_settlement_statement_and_nothing_else_writes_a_ledger_row(
    user, btc, set_price, flow: Callable, statement: str, fills: int
):
    # given the market at 50000
    set_price("BTC", "50000")
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    # when
    with connection.execute_wrapper(record):
        flow(user, set_price)

    # then each fill was one of the settlement's statements, this flow's last one the expected
    ran = [sql for sql in sent if sql in FILL_STATEMENTS]
    assert len(ran) == fills
    assert ran[-1] is statement
    # and nothing else wrote to a ledger
    others = [sql for sql in sent if sql not in FILL_STATEMENTS]
    assert [sql for sql in others if any(ledger in sql for ledger in LEDGERS) and "INSERT" in sql] == []
    # and each fill wrote one row in each ledger, for its order
    filled = Order.objects.filter(user=user, status=Order.Status.COMPLETED)
    assert filled.count() == fills
    for each in filled:
        assert CashTransaction.objects.filter(order=each).count() == 1
        assert AssetTransaction.objects.filter(order=each).count() == 1
    assert reconcile_ledger() == []


def test_a_sale_returns_its_fill_from_the_statement_and_rounds_its_pnl_half_even(user, btc, set_price):
    # given 1 BTC bought at 100.01 (its average purchase price)
    set_price("BTC", "100.01")
    order(user, "BUY", "1")
    new = Order(
        user=user,
        asset=btc,
        order_type="SELL",
        quantity=D("0.5"),
        created_at=timezone.now(),
        placed_via=Order.PlacedVia.API,
    )
    quote = Quote(asset_id="BTC", price=D("109.98"), as_of=timezone.now(), source="test")
    now = timezone.now()

    # when: 0.5 sold at 109.98 pays 54.99, against 0.5 x 100.01 = 50.005 of cost
    with CaptureQueriesContext(connection) as captured:
        fill = settlement.execute_sell_order(order=new, quote=quote, now=now)

    # then one statement, whose fill is the ledger's and the holding's
    assert len(captured.captured_queries) == 1
    row = AssetTransaction.objects.get(order_id=new.order_id)
    assert fill == settlement.Fill(
        fill_id=row.id,
        order_id=new.order_id,
        user_id=user.pk,
        asset_id="BTC",
        side="SELL",
        quantity=D("0.5"),
        price=D("109.98"),
        amount=D("54.99"),
        position_quantity=D("0.5"),
        filled_at=now,
    )
    # and the P&L of 4.985 is rounded half-even, as core.money.to_cents rounds: 4.98
    assert row.realized_pnl == D("4.98")
    assert (new.status, new.total_amount, new.executed_price) == ("COMPLETED", D("54.99"), D("109.98"))


def test_a_resting_fill_returns_its_fill_and_leaves_the_order_and_the_locked_balance_as_stored(user, btc, set_price):
    # given a resting BUY holding 450.00, claimed with its user lock
    set_price("BTC", "50000")
    resting = order(user, "BUY", "0.01", order_price=D("45000"))
    quote = Quote(asset_id="BTC", price=D("44000"), as_of=timezone.now(), source="test")
    now = timezone.now()

    # when
    with transaction.atomic():
        claimed = claim_pending_order(order_id=resting.pk)
        with CaptureQueriesContext(connection) as captured:
            fill = settlement.fill_pending_order_locked(order=claimed.order, usd=claimed.usd, quote=quote, now=now)

    # then: one statement; the fill, the order and the balance as the database has them
    assert len(captured.captured_queries) == 1
    row = AssetTransaction.objects.get(order_id=resting.pk)
    assert (fill.fill_id, fill.amount, fill.position_quantity, fill.filled_at) == (row.id, D("440.00"), D("0.01"), now)
    stored = Order.objects.get(pk=resting.pk)
    assert (
        (claimed.order.status, claimed.order.total_amount, claimed.order.held_amount)
        == (
            stored.status,
            stored.total_amount,
            stored.held_amount,
        )
        == ("COMPLETED", D("440.00"), D("0.00"))
    )
    usd = user.usd_balance
    usd.refresh_from_db()
    assert (
        (claimed.usd.current_balance, claimed.usd.held)
        == (usd.current_balance, usd.held)
        == (
            D("9560.00"),
            D("0.00"),
        )
    )
    assert AssetBalance.objects.get(user=user).quantity == D("0.01")


def test_a_fill_that_lost_its_order_to_a_cancel_writes_nothing(user, btc, set_price, money_snapshot):
    # given a resting BUY claimed for a fill, then cancelled before the fill's statement
    # (as a cancel that held the user lock while the claim waited for it)
    set_price("BTC", "50000")
    resting = order(user, "BUY", "0.01", order_price=D("45000"))
    quote = Quote(asset_id="BTC", price=D("44000"), as_of=timezone.now(), source="test")
    with transaction.atomic():
        claimed = claim_pending_order(order_id=resting.pk)
        Order.objects.filter(pk=resting.pk).update(status=Order.Status.CANCELLED, held_amount=0)
        before = money_snapshot(user)

        # when / then
        with pytest.raises(OrderNoLongerPending):
            settlement.fill_pending_order_locked(order=claimed.order, usd=claimed.usd, quote=quote, now=timezone.now())
        assert money_snapshot(user) == before
