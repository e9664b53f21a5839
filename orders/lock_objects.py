"""Order-state transitions as compare-and-swap updates, and the claim of process_orders
(docs/DESIGN.md, "Lock order").

An order's row is never locked by a SELECT: its transitions are one ``UPDATE ... WHERE
status = 'PENDING'``, and the row count says whether this worker won, so two copies of
process_orders, or a cancel racing a fill, can never both act on one order (a fill's own
compare-and-swap is inside its settlement statement, ``orders.settlement``). Like the
balances' locks, every function here refuses to run outside a transaction: a transition
belongs to the transaction that holds the owner's user lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from balances.lock_objects import require_transaction
from balances.models import UsdBalance
from orders.models import AccountFillModel, Order


def transition_pending(*, order_id, to_status: str, **fields) -> bool:
    """Move a PENDING order to ``to_status`` with ``fields``; False if it was not PENDING. The
    caller holds the owner's user lock."""
    require_transaction()
    fields.setdefault("updated_at", timezone.now())
    updated = Order.objects.filter(pk=order_id, status=Order.Status.PENDING).update(status=to_status, **fields)
    return updated == 1


def trigger_pending(*, order_id, at: datetime) -> bool:
    """Mark a PENDING stop triggered at ``at`` (a stop-limit that now rests as a limit order);
    False if it was not PENDING. The caller holds the owner's user lock."""
    require_transaction()
    return Order.objects.filter(pk=order_id, status=Order.Status.PENDING).update(triggered_at=at, updated_at=at) == 1


class Claimed(NamedTuple):
    order: Order
    usd: UsdBalance  # the owner's USD balance, locked: the user lock
    fill_model: AccountFillModel | None  # the account's own fill model; None: the deployment's


_ORDER_FIELDS = [field.attname for field in Order._meta.concrete_fields]
_USD_FIELDS = [field.attname for field in UsdBalance._meta.concrete_fields]
_MODEL_FIELDS = [field.attname for field in AccountFillModel._meta.concrete_fields]
# The account's fill model comes with the claim (docs/DESIGN.md, "Fill model"): no query more.
_CLAIM_SQL = f"""
SELECT {", ".join(f"o.{connection.ops.quote_name(f.column)}" for f in Order._meta.concrete_fields)},
       {", ".join(f"u.{connection.ops.quote_name(f.column)}" for f in UsdBalance._meta.concrete_fields)},
       {", ".join(f"m.{connection.ops.quote_name(f.column)}" for f in AccountFillModel._meta.concrete_fields)}
FROM orders_order o JOIN balances_usdbalance u ON u.user_id = o.user_id
LEFT JOIN orders_accountfillmodel m ON m.user_id = o.user_id
WHERE o.order_id = %s AND o.status = '{Order.Status.PENDING}'
  AND pg_try_advisory_xact_lock(hashtextextended(o.order_id::text, 0))
FOR NO KEY UPDATE OF u
"""


def claim_pending_order(*, order_id) -> Claimed | None:
    """The PENDING order, claimed for this transaction with a non-blocking advisory lock on
    its id, with its owner's user lock taken: one query. None when it is gone, no longer
    pending, or another process has claimed it (then without waiting for anything).

    The claim lets several process_orders copies share one list of crossed orders: the
    loser of a claim moves on at once instead of queueing on the owner's user lock only to
    lose the compare-and-swap. It is not the guard against double fills (the CAS is: the
    order read here is not locked, and may have left PENDING while this waited for the
    user lock) and it cannot deadlock: no flow ever waits for an advisory lock.
    """
    require_transaction()
    with connection.prepared_cursor() as cursor:  # one per resting order process_orders fills
        cursor.execute(_CLAIM_SQL, [order_id])
        row = cursor.fetchone()
    if row is None:
        return None
    split, end = len(_ORDER_FIELDS), len(_ORDER_FIELDS) + len(_USD_FIELDS)
    order = Order.from_db(connection.alias, _ORDER_FIELDS, row[:split])
    usd = UsdBalance.from_db(connection.alias, _USD_FIELDS, row[split:end])
    model = None if row[end] is None else AccountFillModel.from_db(connection.alias, _MODEL_FIELDS, row[end:])
    return Claimed(order, usd, model)


def release_client_order_id(order: Order) -> bool:
    """Free the client_order_id of an order refused for want of a price, so the retry that
    asks for it is placed: a transient refusal does not burn a client_order_id
    (docs/DESIGN.md, "How an order flows").

    Only rows written before transient refusals stopped storing anything hold one: such an
    order FAILED on arrival, moved nothing, and its 503 was not a final answer. The row
    stays for support, its key moved into ``failure_details``. Done when a request asks for
    the key rather than by a data migration: the rows are few, and the key is needed only
    then. A compare-and-swap on the key: two retries racing free it once, and the unique
    index then lets one of them place it. False when another request freed it first."""
    require_transaction()
    details = {**order.failure_details, "client_order_id": order.client_order_id}
    freed = Order.objects.filter(pk=order.pk, client_order_id=order.client_order_id).update(
        client_order_id=None, failure_details=details, updated_at=timezone.now()
    )
    return freed == 1


def transition_every_pending(*, order_ids: list, to_status: str, **fields) -> int:
    """Move the PENDING ones of ``order_ids`` to ``to_status`` with ``fields`` in one statement;
    how many moved. The caller holds their owner's user lock."""
    require_transaction()
    if not order_ids:
        return 0
    fields.setdefault("updated_at", timezone.now())
    return Order.objects.filter(pk__in=order_ids, status=Order.Status.PENDING).update(status=to_status, **fields)
