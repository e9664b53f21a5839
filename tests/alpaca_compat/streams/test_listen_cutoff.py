"""A connection that starts listening gets the events committed after it began, and none of
those committed before, even when the hub has not read them yet (its reads of the outbox lag
commits by up to STREAM_POLL_SECONDS)."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection

from alpaca_compat.streams.hub import ORDER_EVENTS, Hub
from orders.events import Event, OrderEvent, Snapshot
from orders.models import OrderEventRecord
from tests.alpaca_compat.streams import flows

pytestmark = pytest.mark.django_db(transaction=True)


class Received:
    """A stream connection as the hub sees one: what it was offered."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def offer(self, item) -> None:
        self.items.append(item)

    def database_lost(self) -> None:
        raise AssertionError("the hub lost its database")


def _last_event() -> tuple[int, str]:
    row = OrderEventRecord.objects.order_by("-id").values_list("id", "payload").first()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT txid::text FROM {OrderEventRecord._meta.db_table} WHERE id = %s", [row[0]])
        return int(cursor.fetchone()[0]), row[1]


def test_a_listener_gets_what_commits_after_it_listens_and_nothing_committed_before(user, btc_at_50k):
    # given: an event committed before the listen, not read by the hub yet
    resting = flows.rest_limit_buy(user, client_order_id="before")
    before = _last_event()
    received = Received()

    async def listen_then_read() -> None:
        hub = Hub(asyncio.get_running_loop())
        try:
            # when: the connection listens, an event commits, and the hub reads both
            await hub.listen_trades(received, user.pk)
            await hub.run_sync(flows.cancel, resting)
            after = await hub.run_sync(_last_event)
            for txid, payload in (before, after):
                hub._dispatch(ORDER_EVENTS, payload, txid=txid)
        finally:
            await hub.stop()

    asyncio.run(listen_then_read())
    # then
    assert OrderEvent.from_json(before[1]).event == Event.NEW
    assert len(received.items) == 1
    assert '"event":"canceled"' in received.items[0]
    assert f'"id":"{resting.order_id}"' in received.items[0]


@pytest.mark.parametrize(
    ("txid", "saw"),
    [(99, True), (100, True), (101, False), (102, True), (103, False), (104, False), (105, False)],
)
def test_a_snapshot_saw_the_transactions_that_had_ended_when_it_was_taken(txid, saw):
    # given: 100 and 102 ended, 101 and 103 running, 104 and later not begun
    snapshot = Snapshot.parse("101:104:101,103")
    # then
    assert snapshot.saw(txid) is saw
