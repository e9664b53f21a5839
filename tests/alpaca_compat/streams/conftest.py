"""A live ASGI server for the stream tests: uvicorn serving portfolio_project.asgi (the API and
the streams) on a free port, in a thread of this process, on the test database; one per test
module, started at its first test. Tests are transactional, so what they commit (and announce)
is what the server's hub receives, as from any other process."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest
import uvicorn
from django.db import connections

from accounts.services import create_api_key
from alpaca_compat.streams import hub as hub_module
from portfolio_project.server import Worker
from scripts.cluster.nodes import free_port
from tests.support.processes import wait_for


class LiveStreams:
    def __init__(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            "portfolio_project.asgi:application",
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            # The WebSocket protocol as production serves it (compression included).
            ws=Worker.CONFIG_KWARGS["ws"],
            ws_per_message_deflate=Worker.CONFIG_KWARGS["ws_per_message_deflate"],
            log_config=None,  # uvicorn's records reach the root logger, and the test's caplog
            log_level="info",
            timeout_graceful_shutdown=2,  # a stalled test client must not hold the shutdown
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="live-streams", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())
        self.loop.close()

    def start(self) -> LiveStreams:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the server did not stop"

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def hub(self) -> hub_module.Hub:
        hub = hub_module._hub
        assert hub is not None, "no stream has connected yet"
        assert hub.loop is self.loop, "the hub of another server"
        return hub

    def trade_listeners(self, user_id: int) -> int:
        """Connections listening to ``user_id``'s trade updates in the server's hub."""
        hub = hub_module._hub
        return len(hub._trade.get(user_id, ())) if hub is not None and hub.loop is self.loop else 0

    def subscribers(self, channel: str) -> int:
        """Connections subscribed to ``channel`` (any symbol) in the server's hub."""
        hub = hub_module._hub
        if hub is None or hub.loop is not self.loop:
            return 0
        return len(set().union(*hub._market[channel].values())) if hub._market[channel] else 0

    def close_minute(self, end) -> None:
        """The minute ending at ``end`` closes: the hub publishes its bars."""
        self.call(lambda: self.hub.publish_bars(end))

    def call(self, make_coroutine: Callable, timeout: float = 10):
        """Run a coroutine on the server's loop (e.g. the close of a minute) and wait for it."""
        return asyncio.run_coroutine_threadsafe(make_coroutine(), self.loop).result(timeout)

    def settle(self) -> None:
        """Wait until the hub has handled what was announced before now (a price set by a
        fixture), so that it does not reach a subscription the test makes next. A hub not
        started yet LISTENs only from its start: nothing to wait for."""
        if hub_module._hub is None or hub_module._hub.loop is not self.loop:
            return
        self.wait_until_live()
        reads = self.hub.reads
        wait_for(lambda: self.hub.reads >= reads + 2, timeout=5, what="the hub to read twice")

    def wait_until_live(self) -> None:
        wait_for(lambda: hub_module._hub is not None and self.hub.live.is_set(), timeout=10, what="the hub")


@pytest.fixture(scope="module")
def live_streams(django_db_setup, django_db_blocker):
    server = LiveStreams().start()
    yield server
    with django_db_blocker.unblock():
        server.stop()
        connections.close_all()


@pytest.fixture
def streams(live_streams, transactional_db, settings):
    # The background bar clock would publish at real minute ends: tests close minutes themselves.
    settings.STREAM_BAR_DELAY_SECONDS = 3600
    return live_streams


@pytest.fixture
def server_errors(caplog):
    """The records of ERROR and above the server logged (a 500, an exception in a consumer):
    a test ends with ``assert server_errors() == []``."""
    caplog.set_level(logging.INFO)
    return lambda: [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def make_key():
    def make(user, name: str = "stream bot") -> tuple[str, str]:
        new = create_api_key(user=user, name=name)
        return new.api_key.key_id, new.secret_key

    return make
