"""What a support agent sees of each order kind: the kind, the stop price and trigger,
time in force, notional, and the replace chain as links both ways."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from orders.services import place_order, replace_order
from orders.validation import OrderChanges, OrderRequest

pytestmark = pytest.mark.django_db


def order(trader, side: str, quantity: str, **prices: str):
    request = OrderRequest(
        asset_id="BTC",
        order_type=side,
        quantity=Decimal(quantity),
        **{name: Decimal(price) for name, price in prices.items()},
    )
    return place_order(user=trader, request=request).order


def test_an_order_page_shows_its_kind_stop_and_replace_chain(support_client, make_user, btc, set_price):
    # given a stop-limit, replaced by another
    set_price("BTC", "50000")
    trader = make_user("trader")
    old = order(trader, "BUY", "0.01", stop_price="60000", order_price="61000")
    new = replace_order(order=old, changes=OrderChanges(stop_price=Decimal("62000"), order_price=Decimal("63000")))

    # when
    old_page = support_client.get(reverse("admin:orders_order_change", args=[old.pk])).content.decode()
    new_page = support_client.get(reverse("admin:orders_order_change", args=[new.pk])).content.decode()
    listing = support_client.get(reverse("admin:orders_order_changelist")).content.decode()

    # then
    assert tuple(t for t in ("stop_limit", "61000", "60000") if t in old_page) == ("stop_limit", "61000", "60000")
    assert (
        f'replaced by <a href="{reverse("admin:orders_order_change", args=[new.pk])}">{str(new.pk)[:8]}</a>' in old_page
    )
    assert f'replaces <a href="{reverse("admin:orders_order_change", args=[old.pk])}">{str(old.pk)[:8]}</a>' in new_page
    # the list shows the kind and both prices of each
    assert listing.count("stop_limit") == 2
    assert re.findall(r'<td class="field-stop_price_display">([^<]*)</td>', listing) == ["62000", "60000"]
    assert re.findall(r'<td class="field-order_price_display">([^<]*)</td>', listing) == ["63000", "61000"]


def test_the_user_pages_recent_orders_show_each_orders_kind_and_prices(support_client, make_user, btc, set_price):
    # given a stop SELL and a limit BUY
    set_price("BTC", "50000")
    trader = make_user("trader")
    order(trader, "BUY", "0.02")
    order(trader, "SELL", "0.01", stop_price="45000")
    order(trader, "BUY", "0.01", order_price="1000")

    # when
    page = support_client.get(reverse("admin:auth_user_change", args=[trader.pk])).content.decode()

    # then the stop is a stop at 45000, not a "market" order
    table = re.search(r'<table id="recent-orders">.*?</table>', page, re.S).group(0)
    rows = [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    assert rows[0] == [
        "order",
        "created",
        "side",
        "kind",
        "quantity",
        "limit price",
        "stop price",
        "status",
        "total USD",
    ]
    assert [row[2:8] for row in rows[1:]] == [
        ["BUY BTC", "limit", "0.01", "1000", "-", "PENDING"],
        ["SELL BTC", "stop", "0.01", "-", "45000", "PENDING"],
        ["BUY BTC", "market", "0.02", "-", "-", "COMPLETED"],
    ]


def test_the_balance_pages_say_stop_orders_hold_too(support_client, make_user, btc, set_price):
    # given a stop BUY holding USD and a stop SELL holding BTC
    set_price("BTC", "50000")
    trader = make_user("trader")
    order(trader, "BUY", "0.02")
    order(trader, "BUY", "0.01", stop_price="60000")
    order(trader, "SELL", "0.01", stop_price="45000")
    usd = trader.usd_balance
    holding = trader.asset_balances.get(asset_id="BTC")

    # when
    usd_page = support_client.get(reverse("admin:balances_usdbalance_change", args=[usd.pk])).content.decode()
    asset_page = support_client.get(reverse("admin:balances_assetbalance_change", args=[holding.pk])).content.decode()

    # then the holds are explained by the orders that make them
    usd.refresh_from_db()
    assert usd.held == Decimal("630.00")  # 0.01 x 60000 x 1.05
    assert "Reserved by open BUY limit, stop and stop-limit orders." in usd_page
    assert "Reserved by open SELL limit, stop and stop-limit orders." in asset_page
    assert ("BUY limit orders." in usd_page, "SELL limit orders." in asset_page) == (False, False)
