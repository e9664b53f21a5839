"""A stream server restarted while orders keep committing: a client that reconnects, listens
and re-reads its orders through the REST API loses nothing (docs/DESIGN.md, "Streams").

The server is the production one (gunicorn, tests/faults/servers.py); the orders are placed by
another process's worth of code (a thread of this one, with its own database connection),
as fast as it can, all along: before, during and after the restart."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import pytest
import requests
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.services import create_api_key
from tests.alpaca_compat.streams import flows
from tests.faults.servers import AppServer
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 400  # at most: the re-read is one page of GET /v2/orders


class Load(threading.Thread):
    """Orders of one account, one after another, until told to stop: market buys (new, fill)
    and limit buys cancelled (new, canceled)."""

    def __init__(self, user) -> None:
        super().__init__(name="order load", daemon=True)
        self.user = user
        self.placed = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set() and self.placed < ORDERS:
                if self.placed % 2:
                    flows.cancel(flows.rest_limit_buy(self.user, quantity="0.0001"))
                else:
                    flows.market_buy(self.user, quantity="0.0001")
                self.placed += 1
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            connection.close()

    def placed_at_least(self, count: int) -> None:
        wait_for(lambda: self.placed >= count or self.error is not None, timeout=30, what=f"{count} orders")
        assert self.error is None, self.error


@contextmanager
def listening(app: AppServer, key: str, secret: str):
    with connect(f"ws://127.0.0.1:{app.port}/stream", open_timeout=10) as ws:
        ws.send(json.dumps({"action": "auth", "key": key, "secret": secret}))
        assert json.loads(ws.recv(timeout=10))["data"]["status"] == "authorized"
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=10))["stream"] == "listening"
        yield ws


def orders_now(app: AppServer, key: str, secret: str) -> dict[str, dict]:
    """GET /v2/orders?status=all: every order of the account as the REST API shows it."""
    response = requests.get(
        f"{app.url}/v2/orders",
        params={"status": "all", "limit": 500, "direction": "asc"},
        headers={"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {order["id"]: order for order in response.json()}


def drain(ws, *, quiet: float) -> list[dict]:
    """The trade updates that arrive until none has for ``quiet`` seconds (or the server goes)."""
    updates = []
    try:
        while True:
            updates.append(json.loads(ws.recv(timeout=quiet))["data"])
    except (TimeoutError, ConnectionClosed):
        return updates


def test_a_client_that_reconnects_after_a_restart_and_rereads_its_orders_misses_no_committed_event(user, btc_at_50k):
    # given: a stream server, a client listening, and orders committing all along
    new = create_api_key(user=user, name="stream bot")
    key, secret = new.api_key.key_id, new.secret_key
    app = AppServer(PRICE_PROVIDER="simulated").start(workers=1)
    load = Load(user)
    try:
        with listening(app, key, secret) as first:
            load.start()
            load.placed_at_least(20)
            # when: the server restarts under the load
            app.stop()
            before_restart = drain(first, quiet=5)
        load.placed_at_least(load.placed + 10)  # orders committed while nobody listened
        app.start(workers=1)
        with listening(app, key, secret) as second:
            reread = orders_now(app, key, secret)
            load.placed_at_least(load.placed + 20)
            load.stopping.set()
            load.join(timeout=30)
            after_restart = drain(second, quiet=1)
        final = orders_now(app, key, secret)
        log = app.log_text()
    finally:
        load.stopping.set()
        app.stop()
    # then: the client's view (events, the re-read, events again) is what the REST API shows
    assert load.error is None, load.error
    assert load.placed <= ORDERS
    assert len(final) == load.placed
    view: dict[str, dict] = {}
    for update in before_restart:
        view[update["order"]["id"]] = update["order"]
    view.update(reread)
    for update in after_restart:
        view[update["order"]["id"]] = update["order"]
    assert view == final
    # every order placed after the client listened again arrived whole, and no event after
    # the reconnect claims a state the REST API does not show
    later = [order_id for order_id in final if order_id not in reread]
    events = {}
    for update in after_restart:
        events.setdefault(update["order"]["id"], []).append(update["event"])
    assert len(later) >= 20
    assert {tuple(events.get(order_id, ())) for order_id in later} <= {("new", "fill"), ("new", "canceled")}
    last = {update["order"]["id"]: update["order"] for update in after_restart}
    assert all(order == final[order_id] for order_id, order in last.items())
    # the load ran through the restart, and nothing failed on the server
    assert before_restart
    assert after_restart
    assert len(reread) > len({update["order"]["id"] for update in before_restart})
    assert "Traceback" not in log, log[-3000:]
    assert " 500 " not in log, log[-3000:]
