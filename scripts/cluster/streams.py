"""The trade-update clients of `make cluster-test` (scripts/cluster/run.py): one per app
instance, both of one account (the watcher's), each with an API key of its own. A client
whose instance goes away reconnects to the other one, listens again and re-reads the
account's orders (GET /v2/orders), as docs/DESIGN.md ("Streams") tells clients to.

What each client saw is kept for the checks: every event with the instance that sent it, its
connections, and its view of the orders (events applied over the re-reads), which must end
equal to what the database holds.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect


@dataclass
class Listened:
    at: float  # seconds since the load started
    instance: str
    reread: int  # orders the client read again after listening (0 on its first connection)


class StreamClient(threading.Thread):
    def __init__(self, name: str, instances: list[tuple[str, int]], key: str, secret: str, started: float) -> None:
        super().__init__(name=f"stream-{name}", daemon=True)
        self.home = name  # the instance it starts on
        self.instances = instances  # (name, port), the one it starts on first
        self.key, self.secret = key, secret
        self.started = started
        self.events: list[tuple[float, str, dict]] = []  # (at, instance, data)
        self.listened: list[Listened] = []
        self.view: dict[str, dict] = {}  # order id -> the order as last seen
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def at(self) -> float:
        return time.monotonic() - self.started

    def listening(self) -> bool:
        return bool(self.listened)

    def quiet_for(self, seconds: float) -> bool:
        last = self.events[-1][0] if self.events else 0.0
        return self.at() - last >= seconds

    def run(self) -> None:
        current = 0
        while not self.stopping.is_set():
            instance, port = self.instances[current]
            try:
                self._session(instance, port)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as error:
                self.errors.append(f"t={self.at():.1f}s {instance}: {type(error).__name__}")
            if not self.stopping.is_set():
                current = (current + 1) % len(self.instances)  # as a load balancer would
                time.sleep(0.2)

    def _session(self, instance: str, port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/stream", open_timeout=5, close_timeout=1) as ws:
            ws.send(json.dumps({"action": "auth", "key": self.key, "secret": self.secret}))
            answer = json.loads(ws.recv(timeout=10))
            if answer.get("data", {}).get("status") != "authorized":
                self.errors.append(f"t={self.at():.1f}s {instance}: {answer}")
                return
            ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            answer = json.loads(ws.recv(timeout=10))
            if answer.get("stream") != "listening":
                self.errors.append(f"t={self.at():.1f}s {instance}: {answer}")
                return
            reread = 0
            if self.listened:  # events were missed while away: read the orders again
                orders = orders_of(port, self.key, self.secret)
                self.view.update(orders)
                reread = len(orders)
            self.listened.append(Listened(self.at(), instance, reread))
            while not self.stopping.is_set():
                try:
                    message = json.loads(ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                if message.get("stream") == "trade_updates":
                    data = message["data"]
                    self.events.append((self.at(), instance, data))
                    self.view[data["order"]["id"]] = data["order"]
                else:
                    self.errors.append(f"t={self.at():.1f}s {instance}: {message}")


def orders_of(port: int, key: str, secret: str) -> dict[str, dict]:
    """Every order of the key's account as GET /v2/orders shows it now."""
    response = requests.get(
        f"http://127.0.0.1:{port}/v2/orders",
        params={"status": "all", "limit": 500, "direction": "asc"},
        headers={"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret},
        timeout=15,
    )
    response.raise_for_status()
    return {order["id"]: order for order in response.json()}
