"""Order-state transitions as compare-and-swap updates.

An order is the last thing a flow locks (after the user's USD balance and the asset
balance). Rather than a SELECT ... FOR UPDATE and a save, its transitions are one
``UPDATE ... WHERE status = 'PENDING'``: the row count says whether this worker won, so two
copies of process_orders, or a cancel racing a fill, can never both act on one order.
"""

from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from balances.lock_objects import require_transaction
from orders.models import Order


def transition_pending(*, order_id, to_status: str, **fields) -> bool:
    """Move a PENDING order to ``to_status`` with ``fields``; False if it was not PENDING. The
    caller holds the owner's user lock."""
    require_transaction()
    fields.setdefault("updated_at", timezone.now())
    updated = Order.objects.filter(pk=order_id, status=Order.Status.PENDING).update(status=to_status, **fields)
    return updated == 1


def claim_pending_order(*, order_id) -> Order | None:
    """The PENDING order, claimed for this transaction with a non-blocking advisory lock on
    its id; None when it is gone, no longer pending, or another process has claimed it.

    The claim lets several process_orders copies share one list of crossed orders: the
    loser of a claim moves on at once instead of queueing on the owner's user lock only to
    lose the compare-and-swap. It is not the guard against double fills (the CAS is) and
    it cannot deadlock: no flow ever waits for an advisory lock.
    """
    require_transaction()
    claim = RawSQL(
        "pg_try_advisory_xact_lock(hashtextextended(orders_order.order_id::text, 0))", [], output_field=BooleanField()
    )
    return (
        Order.objects.select_related("asset")
        .filter(pk=order_id, status=Order.Status.PENDING)
        .annotate(claimed=claim)
        .filter(claimed=True)
        .first()
    )


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
