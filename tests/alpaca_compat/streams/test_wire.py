"""The ids a trade update carries: the same for the same event whichever process renders it,
today and after an upgrade (a client may keep them to tell a replayed event from a new one)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from alpaca_compat.streams import wire
from orders.events import Event, OrderEvent


@given(namespace=st.uuids(), name=st.text())
def test_uuid5_text_is_the_standard_librarys_uuid5(namespace, name):
    assert wire.uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))


def _event(**kwargs) -> OrderEvent:
    order = {"order_id": "5b0f8a64-0f3c-4d0e-9d6e-2f7c1e9a1b2c", "updated_at": "2026-12-07T21:58:32.419519Z"}
    return OrderEvent(user_id=7, order=order, at=datetime(2026, 12, 7, tzinfo=UTC), **kwargs)


def test_a_fills_execution_id_is_the_one_earlier_versions_sent():
    # given: a fill whose asset ledger row is 1234
    fill = _event(event=Event.FILL, execution_id="1234")

    # then: the id every version has sent for it (uuid5 of "fill:1234" in the streams' namespace)
    assert wire.execution_id(fill) == "b9227d9e-adae-555c-bcff-8d665afdd307"


def test_other_events_ids_follow_the_order_the_event_and_its_time():
    new, cancelled = _event(event=Event.NEW), _event(event=Event.CANCELLED)

    assert wire.execution_id(new) == str(
        uuid.uuid5(wire.EXECUTION_NAMESPACE, "5b0f8a64-0f3c-4d0e-9d6e-2f7c1e9a1b2c:new:2026-12-07T21:58:32.419519Z")
    )
    assert wire.execution_id(new) != wire.execution_id(cancelled)
