"""One hub per server process: it reads the domain events and fans them out to that
process's stream connections (docs/DESIGN.md, "Streams").

- One PostgreSQL session per process, through psycopg's async connection, reads the order
  events' outbox every ``STREAM_POLL_SECONDS`` (``orders.events``: each committed event once,
  an account's in commit order, whichever process committed them) and LISTENs on
  ``price_events`` (``assets.price_events``). It goes straight to the primary
  (``STREAM_DATABASE_URL``, by default the database of ``DATABASE_URL``: behind PgBouncer in
  transaction pooling LISTEN does not work, so there it must name the primary).
- Each event is rendered once (a trade update only when a connection of its account
  listens) and offered to the connections that want it: by account for trade updates, by
  symbol for market data. Offering never waits: each connection has a bounded outbox, and a
  connection whose outbox is full is a slow client, dropped (Alpaca's 407) without slowing
  anybody else or the database.
- When the session is lost, every trade-update connection is closed (clients reconnect and
  re-read their orders instead of silently missing events), and the hub reconnects with
  backoff. Market data connections stay: a missed quote is superseded by the next one.
- When a minute closes, one query reads the bars of every symbol its clients want
  (``assets.selectors.get_closing_bars``): minute bars, a minute bar that changed after it
  was sent (updated bars), and today's bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

import psycopg
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from alpaca_compat.streams import wire
from alpaca_compat.symbols import asset_id_for, pair_symbol
from assets.price_events import PRICE_EVENTS, PriceEvent
from assets.selectors import Bar, get_closing_bars
from orders.events import FORGET_SQL, HORIZON_SQL, NEW_EVENTS_SQL, SNAPSHOT_SQL, EventFeed, OrderEvent, Snapshot

logger = logging.getLogger(__name__)

MARKET_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars")
BAR_CHANNELS = ("bars", "updatedBars", "dailyBars")
WILDCARD = "*"
APPLICATION_NAME = "portfolio stream hub"
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 10.0
MINUTE = timedelta(minutes=1)
ORDER_EVENTS = "order_events"
# A read of the outbox that returns this many events is followed by another at once.
POLL_BATCH = 1000
FORGET_EVERY_SECONDS = 60.0
# An event's account, near the start of its JSON (orders.events: "event", then "user_id"),
# whether Python (``OrderEvent.to_json``) or PostgreSQL (``json_build_object``) wrote it.
USER_ID = re.compile(r'"user_id"\s*:\s*(\d+)')


class Connection(Protocol):
    """What the hub asks of a stream connection (alpaca_compat/streams/consumers.py)."""

    def offer(self, item) -> None:
        """Queue ``item`` for the client without waiting; drop the client if it cannot keep up."""

    def database_lost(self) -> None:
        """The hub's session is gone: end the connection so that the client starts over."""


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


def database_params() -> dict:
    """Where the hub LISTENs: STREAM_DATABASE_URL, or where Django's default connection goes,
    with every libpq parameter Django would pass (a socket directory given as ``?host=`` in
    DATABASE_URL lands in OPTIONS, not HOST, and must not be lost)."""
    keepalives = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
    if settings.STREAM_DATABASE_URL:
        return {"conninfo": settings.STREAM_DATABASE_URL, "application_name": APPLICATION_NAME, **keepalives}
    django_params = connections["default"].get_connection_params()
    params = {key: value for key, value in django_params.items() if key in _libpq_keywords() and value is not None}
    return {**params, "application_name": APPLICATION_NAME, **keepalives}


def _with_fresh_connections(function: Callable, /, *args, **kwargs):
    # As a request does: connections past CONN_MAX_AGE or broken are replaced before and after.
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.live = asyncio.Event()  # LISTENing now: events committed from here on arrive
        # Reads of the outbox so far: a notification sent before one began is handled by its end.
        self.reads = 0
        # By account, each listening connection with the snapshot taken when it began to listen.
        self._trade: dict[int, dict[Connection, Snapshot]] = {}
        self._market: dict[str, dict[str, set[Connection]]] = {channel: {} for channel in MARKET_CHANNELS}
        self._admitted: Counter = Counter()
        self._listen_task: asyncio.Task | None = None
        self._bars_task: asyncio.Task | None = None
        self._sent_bars: dict[tuple[str, datetime], Bar] = {}
        self._last_bars_end: datetime | None = None
        # Django's database reads of the streams (authentication, bars) run here, off the loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-db")

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._listen_task is None:
            self._listen_task = self.loop.create_task(self._listen(), name="stream hub")

    async def stop(self) -> None:
        for task in (self._listen_task, self._bars_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listen_task = self._bars_task = None
        await self.run_sync(connections.close_all)
        self._executor.shutdown(wait=False)

    async def run_sync(self, function: Callable, /, *args, **kwargs):
        """``function(*args, **kwargs)`` on the hub's database thread."""
        call = functools.partial(_with_fresh_connections, function, *args, **kwargs)
        return await self.loop.run_in_executor(self._executor, call)

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(autocommit=True, **database_params()) as conn:
                    conn.add_notify_handler(self._price_notification)
                    await conn.execute(f"LISTEN {PRICE_EVENTS}")
                    feed = EventFeed((await (await conn.execute(HORIZON_SQL)).fetchone())[0])
                    if failures:
                        logger.warning("stream hub: reading events again after %d failed attempts", failures)
                    failures = 0
                    self.live.set()
                    await self._poll(conn, feed)
            except (psycopg.Error, OSError) as error:
                failures += 1
                logger.warning("stream hub: database session lost (%s: %s)", type(error).__name__, error)
            except Exception:
                # A bug in reading or fanning out events: the task must not end in silence, with
                # every stream of this process quiet from then on. Its clients start over, as
                # when the session is lost, and the traceback goes to the log. Deliberately broad.
                failures += 1
                logger.exception("stream hub: reading events failed; starting over")
            finally:
                if self.live.is_set():
                    self.live.clear()
                    self._database_lost()
            await asyncio.sleep(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, failures - 1)))

    async def _poll(self, conn: psycopg.AsyncConnection, feed: EventFeed) -> None:
        """Read the outbox every STREAM_POLL_SECONDS (at once again after a full read), and
        forget its rows once every process has had STREAM_EVENT_RETENTION_SECONDS to read
        them. Quotes' notifications arrive with the answers to these reads."""
        horizons: deque[tuple[float, str]] = deque()
        while True:
            cursor = await conn.execute(NEW_EVENTS_SQL, {"since": str(feed.since)})
            events = feed.new(await cursor.fetchall())
            self.reads += 1
            if self._trade or self._market["trades"]:  # else nobody here wants them: not even parsed
                for txid, payload in events:
                    if self._wanted(payload):
                        self._dispatch(ORDER_EVENTS, payload, txid=txid)
            now = time.monotonic()
            if not horizons or now - horizons[-1][0] >= FORGET_EVERY_SECONDS:
                horizons.append((now, str(feed.since)))
            if now - horizons[0][0] >= settings.STREAM_EVENT_RETENTION_SECONDS:
                await conn.execute(FORGET_SQL, {"before": horizons.popleft()[1]})
            if len(events) < POLL_BATCH:
                await asyncio.sleep(settings.STREAM_POLL_SECONDS)

    def _wanted(self, payload: str) -> bool:
        """Whether an order event may concern a connection of this process, read from its
        text: every process reads every event, and most are of accounts listening elsewhere or
        nowhere, which need not be parsed (a payload not in the expected form is)."""
        if self._market["trades"]:
            return True
        match = USER_ID.search(payload, 0, 200)
        return match is None or int(match.group(1)) in self._trade

    def _price_notification(self, notification: psycopg.Notify) -> None:
        self._dispatch(notification.channel, notification.payload)

    def _database_lost(self) -> None:
        for targets in list(self._trade.values()):
            for connection in list(targets):
                connection.database_lost()
        self._trade.clear()

    # --- who wants what ------------------------------------------------------------------

    def admit(self, credential: tuple[str, str]) -> bool:
        """Count one more connection of ``credential`` (stream kind, key) in this process;
        False, counting nothing, when it already has STREAM_CONNECTIONS_PER_KEY."""
        if self._admitted[credential] >= settings.STREAM_CONNECTIONS_PER_KEY:
            return False
        self._admitted[credential] += 1
        return True

    def release(self, credential: tuple[str, str]) -> None:
        self._admitted[credential] -= 1
        if self._admitted[credential] <= 0:
            del self._admitted[credential]

    async def listen_trades(self, connection: Connection, user_id: int) -> None:
        """From now on, ``connection`` gets its account's events: those committed after this
        call began, never one committed before it that the hub had not read yet."""
        snapshot = Snapshot.parse(await self.run_sync(_current_snapshot))
        self._trade.setdefault(user_id, {})[connection] = snapshot

    def stop_trades(self, connection: Connection, user_id: int) -> None:
        targets = self._trade.get(user_id)
        if targets is not None:
            targets.pop(connection, None)
            if not targets:
                del self._trade[user_id]

    def subscribe(self, connection: Connection, channels: dict[str, Iterable[str]]) -> None:
        """Replace ``connection``'s market data subscriptions with ``channels`` (channel ->
        symbols, ``*`` for every one)."""
        self.unsubscribe(connection)
        for channel, symbols in channels.items():
            for symbol in symbols:
                self._market[channel].setdefault(symbol, set()).add(connection)
        if any(channels.get(channel) for channel in BAR_CHANNELS) and self._bars_task is None:
            self._bars_task = self.loop.create_task(self._bars(), name="stream bars")

    def unsubscribe(self, connection: Connection) -> None:
        for by_symbol in self._market.values():
            for symbol in [symbol for symbol, targets in by_symbol.items() if connection in targets]:
                by_symbol[symbol].discard(connection)
                if not by_symbol[symbol]:
                    del by_symbol[symbol]

    def forget(self, connection: Connection, user_id: int | None) -> None:
        if user_id is not None:
            self.stop_trades(connection, user_id)
        self.unsubscribe(connection)

    # --- fan-out -------------------------------------------------------------------------

    def _dispatch(self, channel: str, payload: str, *, txid: int | None = None) -> None:
        try:
            if channel == ORDER_EVENTS:
                self._order_event(OrderEvent.from_json(payload), txid=txid)
            elif channel == PRICE_EVENTS:
                event = PriceEvent.from_json(payload)
                self._publish("quotes", event.asset_id, wire.quote(event))
        except (ValueError, KeyError, TypeError, ArithmeticError) as error:
            # Not ours, or from a newer version of the code: one bad payload stops nothing.
            logger.warning("stream hub: unreadable %s payload (%s): %.200s", channel, error, payload)
        except Exception:
            # Whatever else one payload breaks (a parser's recursion limit, a bug in rendering)
            # stops nothing either; deliberately broad, with the traceback in the log.
            logger.exception("stream hub: could not deliver a %s payload: %.200s", channel, payload)

    def _order_event(self, event: OrderEvent, *, txid: int | None) -> None:
        targets = self._trade.get(event.user_id)
        if targets:
            text = wire.trade_update(event)
            for connection, listened in list(targets.items()):
                if txid is None or not listened.saw(txid):
                    connection.offer(text)
        if wire.is_fill(event) and self._market["trades"]:
            self._publish("trades", event.order["asset_id"], wire.trade(event))

    def _publish(self, channel: str, asset_id: str, message: wire.Message) -> None:
        by_symbol = self._market[channel]
        targets = by_symbol.get(pair_symbol(asset_id), set()) | by_symbol.get(WILDCARD, set())
        for connection in targets:
            connection.offer(message)

    # --- bars ----------------------------------------------------------------------------

    def _bar_symbols(self) -> tuple[bool, set[str]]:
        wanted = set()
        for channel in BAR_CHANNELS:
            wanted |= set(self._market[channel])
        return WILDCARD in wanted, wanted - {WILDCARD}

    async def _bars(self) -> None:
        """At each minute's close (and STREAM_BAR_DELAY_SECONDS, for its last recorded price
        to land), publish the bars, while anybody in this process wants them."""
        try:
            while any(self._market[channel] for channel in BAR_CHANNELS):
                now = datetime.now(UTC)
                end = now.replace(second=0, microsecond=0) + MINUTE
                await asyncio.sleep((end - now).total_seconds() + settings.STREAM_BAR_DELAY_SECONDS)
                try:
                    await self.publish_bars(end)
                except (DatabaseError, OSError) as error:
                    logger.warning("stream hub: no bars for the minute to %s (%s)", end.isoformat(), error)
        finally:
            self._bars_task = None

    async def publish_bars(self, end: datetime) -> None:
        """Publish the bars of the minute that closed at ``end``: ``b`` for it, ``u`` for the
        minute before when it changed since it was sent, ``d`` for the day so far."""
        everything, symbols = self._bar_symbols()
        if not everything and not symbols:
            return
        asset_ids = None if everything else sorted({a for a in map(_asset_id, symbols) if a is not None})
        minutes, days = await self.run_sync(get_closing_bars, end=end, asset_ids=asset_ids)
        just_closed = end - MINUTE
        continued = self._last_bars_end == just_closed
        for bar in minutes:
            key = (bar.asset_id, bar.timestamp)
            if bar.timestamp == just_closed:
                self._publish("bars", bar.asset_id, wire.bar("b", bar))
            elif continued and self._sent_bars.get(key) != bar:
                self._publish("updatedBars", bar.asset_id, wire.bar("u", bar))
        for bar in days:
            self._publish("dailyBars", bar.asset_id, wire.bar("d", bar))
        self._sent_bars = {(bar.asset_id, bar.timestamp): bar for bar in minutes if bar.timestamp == just_closed}
        self._last_bars_end = end


def _current_snapshot() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute(SNAPSHOT_SQL)
        return cursor.fetchone()[0]


def _asset_id(symbol: str) -> str | None:
    # Subscriptions hold BTC/USD-style symbols (consumers canonicalise them), never a UUID.
    return asset_id_for(symbol) if "/" in symbol else None


_hub: Hub | None = None


def get_hub() -> Hub:
    """The hub of this process's event loop, started."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub(loop)
    _hub.start()
    return _hub


async def stop_hub() -> None:
    global _hub
    if _hub is not None and _hub.loop is asyncio.get_running_loop():
        hub, _hub = _hub, None
        await hub.stop()
