from decimal import Decimal

import pytest

from assets.services import set_tradable
from core.exceptions import InvalidRequest
from orders.models import Order
from orders.services import place_order
from orders.validation import OrderRequest


def test_suspending_an_asset_stops_trading_in_this_process_at_once(user, btc, eth, set_price):
    # given an order that read (and cached) BTC
    set_price("BTC", "50000")
    place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    # when
    changed = set_tradable(asset_ids=["BTC", "ETH"], active=False)
    # then
    assert sorted(changed) == ["BTC", "ETH"]
    with pytest.raises(InvalidRequest):
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
    assert Order.objects.count() == 1


def test_set_tradable_reports_only_what_changed(btc, eth):
    set_tradable(asset_ids=["ETH"], active=False)
    assert set_tradable(asset_ids=["BTC", "ETH"], active=True) == ["ETH"]
    assert set_tradable(asset_ids=["BTC", "ETH"], active=True) == []
