"""A resting order filled in parts, as alpaca-py's TradingStream receives it: each part a
``partial_fill`` (the order ``partially_filled``), then ``fill`` (docs/DESIGN.md, "Fill model")."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from django.utils import timezone

from orders.models import Order
from orders.services import fill_resting_order, set_account_fill_model
from tests.alpaca_compat.streams import flows
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_alpaca_py_receives_each_partial_fill_then_the_fill(streams, user, make_key, btc, set_price, server_errors):
    # given: alice takes at most 10 % of a minute's volume, a limit BUY of 0.02 rests at 40,000
    set_account_fill_model(user=user, fill_participation=Decimal("0.1"))
    set_price("BTC", "50000", volume=Decimal("0.1"))
    key, secret = make_key(user)
    received: list[TradeUpdate] = []

    async def on_update(update: TradeUpdate) -> None:
        received.append(update)

    stream = TradingStream(key, secret, paper=True, url_override=streams.url("/stream"))
    stream.subscribe_trade_updates(on_update)
    runner = threading.Thread(target=stream.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: streams.trade_listeners(user.pk) == 1, timeout=10, what="alpaca-py to listen")
        order = flows.rest_limit_buy(user, quantity="0.02")

        # when: the market crosses with 0.1 BTC traded (0.005 to 0.01 of it for alice), then,
        # a minute later, with 10 BTC traded (the rest)
        quote = set_price("BTC", "39000", volume=Decimal("0.1"))
        assert fill_resting_order(order_id=order.pk, quote=quote)
        Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(minutes=1))
        quote = set_price("BTC", "39000", volume=Decimal("10"))
        assert fill_resting_order(order_id=order.pk, quote=quote)
        wait_for(lambda: len(received) >= 3, timeout=10, what="three trade updates")
    finally:
        stream.stop()
        runner.join(timeout=10)

    # then
    assert [(u.event, u.order.status) for u in received] == [
        ("new", "new"),
        ("partial_fill", "partially_filled"),
        ("fill", "filled"),
    ]
    part, whole = received[1], received[2]
    assert 0 < part.qty < 0.02
    assert float(part.order.filled_qty) == part.qty
    assert part.qty + whole.qty == pytest.approx(0.02)
    assert (whole.order.filled_qty, whole.order.filled_avg_price) == ("0.02", "39000")
    assert server_errors() == []
