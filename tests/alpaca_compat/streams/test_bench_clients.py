"""`make bench`'s stream clients (scripts/bench/streams.py) against a live server: the figures
the streams phase reports (fills received and when, quotes counted, connections closed) are
only as good as these clients' reading of the wire."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.services import issue_token
from assets.price_events import announce_prices
from assets.prices import Quote
from orders.services import place_order
from orders.validation import OrderRequest
from tests.support.processes import ROOT, wait_for

sys.path.insert(0, str(ROOT / "scripts" / "bench"))
from streams import ClientsProcess

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def bench_clients(kind: str, port: int, credentials: list[str], tmp_path: Path) -> Iterator[ClientsProcess]:
    path = tmp_path / f"{kind}-credentials.txt"
    path.write_text("\n".join(credentials) + "\n")
    clients = ClientsProcess(kind, port, path, 1)
    try:
        yield clients
    finally:
        clients.kill()


def test_trade_clients_record_each_fill_of_their_accounts_with_its_order_id(
    streams, user, other_user, btc_at_50k, tmp_path
):
    # given
    tokens = [issue_token(user=user).key, issue_token(user=other_user).key]
    with bench_clients("trade", streams.port, tokens, tmp_path) as clients:
        assert clients.wait_ready() == 2
        started = time.time()

        # when
        orders = [
            place_order(user=owner, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01")))
            for owner in (user, other_user)
        ]
        wait_for(lambda: clients.count()[1] == 2, timeout=10, what="both fill events")
        result = clients.finish()

    # then
    assert sorted(order_id for order_id, _ in result["fills"]) == sorted(str(o.order.order_id) for o in orders)
    assert all(started <= at <= time.time() for _, at in result["fills"])
    assert result["ready"] == 2
    assert result["closed"] == []
    assert result["failed_count"] == 0
    assert result["messages"] == 4  # each order's new, then its fill


def test_market_clients_count_each_quote_once_per_subscriber(streams, user, other_user, btc_at_50k, make_key, tmp_path):
    # given
    credentials = [":".join(make_key(owner)) for owner in (user, other_user)]
    with bench_clients("market", streams.port, credentials, tmp_path) as clients:
        assert clients.wait_ready() == 2

        # when
        for price in ("50001", "50002", "50003"):
            announce_prices([Quote(asset_id="BTC", price=Decimal(price), as_of=timezone.now(), source="bench")])
        wait_for(lambda: clients.count()[0] == 6, timeout=10, what="three quotes at both subscribers")
        result = clients.finish()

    # then
    assert result["quotes"] == 6
    assert result["closed"] == []
    assert result["failed_count"] == 0


def test_a_rejected_credential_is_a_failure_not_a_ready_client(streams, tmp_path):
    # given
    with bench_clients("trade", streams.port, ["not-a-token"], tmp_path) as clients:
        # when
        ready = clients.wait_ready()
        result = clients.finish()

    # then
    assert ready == 0
    assert result["failed_count"] == 1
    assert "authorized" in result["failed"][0]
