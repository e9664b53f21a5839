"""The lock order enforced rather than described (docs/DESIGN.md, "Lock order"): the lock
functions of balances and orders refuse to run outside a transaction, where a lock would end
with its own statement, and lock several rows in one statement, in the order of their keys."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from balances.lock_objects import asset_balance_for_update, asset_balances_for_update, usd_balance_for_update
from balances.services import adjust_asset_balance
from orders.lock_objects import claim_pending_order, transition_pending
from orders.models import Order


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "lock",
    [
        lambda user, order: usd_balance_for_update(user_id=user.pk),
        lambda user, order: asset_balance_for_update(user_id=user.pk, asset_id="BTC"),
        lambda user, order: asset_balances_for_update(user_id=user.pk, asset_ids=["BTC", "ETH"]),
        lambda user, order: claim_pending_order(order_id=order.pk),
        lambda user, order: transition_pending(order_id=order.pk, to_status=Order.Status.CANCELLED),
    ],
    ids=["user lock", "holding", "holdings", "claim", "transition"],
)
def test_a_lock_or_an_order_transition_outside_a_transaction_is_refused_and_changes_nothing(user, btc, lock):
    # given a resting order (stored as the engine stores one; nothing here is a transaction)
    order = Order.objects.create(
        user=user, asset=btc, order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("40000")
    )

    # when / then
    with pytest.raises(TransactionManagementError, match=r"inside transaction\.atomic"):
        lock(user, order)
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING


@pytest.mark.django_db
def test_several_holdings_are_locked_in_one_statement_in_the_order_of_their_assets(user, btc, eth, staff_user):
    # given holdings of two assets
    for asset in (eth, btc):
        adjust_asset_balance(user=user, asset=asset, quantity=Decimal("1"), reason="seed", actor=staff_user)

    # when asked for in any order
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        holdings = asset_balances_for_update(user_id=user.pk, asset_ids=["ETH", "BTC", "ETH", "DOGE"])

    # then one statement locks them, sorted by asset, and only those that exist come back
    (statement,) = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith("SAVEPOINT")]
    assert statement.endswith('ORDER BY "balances_assetbalance"."asset_id" ASC FOR NO KEY UPDATE')
    assert "IN ('BTC', 'DOGE', 'ETH')" in statement
    assert list(holdings) == ["BTC", "ETH"]
