"""Properties of the fill model over random price paths, volumes, order sequences and models
(hypothesis; docs/DESIGN.md, "Fill model"): money is conserved to the cent (cash + holdings at
cost - realized P&L net of fees = what was deposited), no balance or hold goes negative and
every one is explained by its ledger, every order's filled_quantity is the sum of its fills,
the same seed gives the same fills, and ideal fills exactly as an account without a model."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from balances.models import AssetBalance, AssetTransaction, UsdBalance
from core.exceptions import DomainError
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import cancel_all_orders, cancel_order, place_order, process_resting_orders, set_account_fill_model
from orders.validation import OrderRequest

pytestmark = pytest.mark.django_db

D = Decimal
_people = itertools.count()
T0 = datetime(2026, 12, 7, 12, 0, 5, tzinfo=UTC)

PROPERTY = hypothesis_settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

cents = st.integers(4_500_000, 5_500_000).map(lambda c: D(c).scaleb(-2))  # 45,000.00 to 55,000.00
quantity = st.integers(100, 6000).map(lambda n: D(n).scaleb(-5))  # 0.001 to 0.06 BTC
# 0.001 to 0.2 BTC a minute: a resting order under a participation limit fills in parts
volume = st.integers(1, 200).map(lambda n: D(n).scaleb(-3))


@dataclass(frozen=True)
class Step:
    price: Decimal
    volume: Decimal
    action: str  # market_buy, market_sell, limit_buy, limit_sell, ioc_buy, fok_sell, cancel, wait
    quantity: Decimal
    offset: int  # a limit's distance from the price, in basis points (negative: away from the market)


steps = st.lists(
    st.builds(
        Step,
        price=cents,
        volume=volume,
        action=st.sampled_from(
            ["market_buy", "market_sell", "limit_buy", "limit_sell", "ioc_buy", "fok_sell", "cancel", "wait"]
        ),
        quantity=quantity,
        offset=st.integers(-300, 50),
    ),
    min_size=1,
    max_size=14,
)
models = st.one_of(
    st.just({"profile": "ideal"}),
    st.just({"profile": "realistic"}),
    st.fixed_dictionaries(
        {
            "spread_bps": st.integers(0, 50).map(D),
            "slippage": st.sampled_from(["none", "volume_share"]),
            "fill_participation": st.one_of(st.none(), st.integers(5, 100).map(lambda n: D(n).scaleb(-2))),
            "maker_fee_bps": st.integers(0, 40).map(D),
            "taker_fee_bps": st.integers(0, 60).map(D),
            "seed": st.integers(0, 1000),
        }
    ),
)


def _run(user, path: list[Step]) -> list[Order]:
    """The path, one minute a step: the market moves, the user acts, process_orders runs."""
    placed: list[Order] = []
    for minute, step in enumerate(path):
        with time_machine.travel(T0 + timedelta(minutes=minute), tick=False):
            from assets.prices import store_quotes
            from assets.quotes import Quote

            store_quotes([Quote("BTC", step.price, T0 + timedelta(minutes=minute), "test", volume=step.volume)])
            side = "BUY" if step.action.endswith("buy") else "SELL"
            # Mostly away from the market (a BUY below, a SELL above): it rests, then fills as the path crosses it.
            away = D(step.offset) / 10_000 if side == "BUY" else -D(step.offset) / 10_000
            limit = (step.price * (1 + away)).quantize(D("0.01"))
            requests = {
                "market_buy": {},
                "market_sell": {},
                "limit_buy": {"order_price": limit},
                "limit_sell": {"order_price": limit},
                "ioc_buy": {"order_price": limit, "time_in_force": "ioc"},
                "fok_sell": {"order_price": limit, "time_in_force": "fok"},
            }
            try:
                if step.action in requests:
                    request = OrderRequest(
                        asset_id="BTC", order_type=side, quantity=step.quantity, **requests[step.action]
                    )
                    placed.append(place_order(user=user, request=request).order)
                elif step.action == "cancel":
                    oldest = Order.objects.filter(user=user, status="PENDING").order_by("created_at").first()
                    if oldest is not None:
                        cancel_order(order=oldest)
            except DomainError as error:
                if getattr(error, "order", None) is not None:
                    placed.append(error.order)
            process_resting_orders()
    for order in placed:
        order.refresh_from_db()
    return placed


def _fills(orders: list[Order]) -> list[tuple]:
    return [(o.status, o.filled_quantity, o.executed_price, o.total_amount) for o in orders]


@PROPERTY
@given(model=models, path=steps)
def test_money_is_conserved_and_every_order_is_its_fills(make_user, btc, settings, model, path):
    # given a trader on the model, with BTC to sell
    settings.PRICE_CACHE_SECONDS = 3600
    trader = make_user(f"trader{next(_people)}")
    set_account_fill_model(user=trader, **model)
    with time_machine.travel(T0 - timedelta(minutes=1), tick=False):
        from assets.prices import store_quotes
        from assets.quotes import Quote

        store_quotes([Quote("BTC", D("50000"), T0 - timedelta(minutes=1), "test", volume=D("10"))])
        place_order(user=trader, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))

    # when
    orders = _run(trader, path)

    # then: every balance and hold is its ledger and its open orders, none negative
    assert reconcile_ledger() == []
    usd = UsdBalance.objects.get(user=trader)
    assert usd.current_balance >= 0
    assert 0 <= usd.held <= usd.current_balance
    holding = AssetBalance.objects.get(user=trader, asset_id="BTC")
    assert 0 <= holding.held_quantity <= holding.quantity
    # every order's filled_quantity is the sum of its fills, and never more than the order
    for order in orders:
        fills = AssetTransaction.objects.filter(order=order, transaction_type__in=["BUY", "SELL"])
        assert (fills.aggregate(total=Sum("quantity"))["total"] or 0) == order.filled_quantity
        assert order.filled_quantity <= order.quantity
        assert (order.status == "COMPLETED") == (order.filled_quantity == order.quantity)
    # money is conserved: cash + holdings at cost - realized P&L (net of fees) is what came in,
    # to a cent per fill (each realized P&L is rounded to the cent)
    realized = AssetTransaction.objects.filter(user=trader).aggregate(total=Sum("realized_pnl"))["total"] or 0
    at_cost = holding.quantity * holding.average_purchase_price
    fills = AssetTransaction.objects.filter(user=trader, transaction_type__in=["BUY", "SELL"]).count()
    assert abs(usd.current_balance + at_cost - realized - D("10000")) <= D("0.01") * fills


@PROPERTY
@given(model=models, path=steps)
def test_the_same_seed_prices_and_orders_give_the_same_fills_and_ideal_is_no_model(
    make_user, btc, settings, model, path
):
    # given two traders on the same model (under ideal, the second has no model of its own)
    settings.PRICE_CACHE_SECONDS = 3600
    first, second = make_user(f"first{next(_people)}"), make_user(f"second{next(_people)}")
    set_account_fill_model(user=first, **model)
    if model != {"profile": "ideal"}:
        set_account_fill_model(user=second, **model)
    outcomes = []
    for trader in (first, second):
        with time_machine.travel(T0 - timedelta(minutes=1), tick=False):
            from assets.prices import store_quotes
            from assets.quotes import Quote

            store_quotes([Quote("BTC", D("50000"), T0 - timedelta(minutes=1), "test", volume=D("10"))])
            place_order(user=trader, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=D("0.1")))

        # when each walks the same path over the same minutes
        orders = _run(trader, path)
        outcomes.append(
            (
                _fills(orders),
                UsdBalance.objects.get(user=trader).current_balance,
                AssetBalance.objects.get(user=trader, asset_id="BTC").quantity,
            )
        )
        with time_machine.travel(T0 + timedelta(minutes=len(path) + 1), tick=False):
            cancel_all_orders(user=trader)

    # then
    assert outcomes[0] == outcomes[1]
