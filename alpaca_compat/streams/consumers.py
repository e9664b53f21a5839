"""The WebSocket endpoints: trade updates (``/stream``) and crypto market data
(``/v1beta3/crypto/us``, ``/v1beta2/crypto``), speaking Alpaca's protocol as alpaca-py,
alpaca-trade-api and CCXT's pro driver speak it (docs/DESIGN.md, "Streams").

Every connection has one writer, draining a bounded outbox: replies and events leave in the
order they were queued, and the hub never waits on a client. Whatever a client sends (bad
JSON, unknown actions, huge frames, a listen before authenticating) is answered with
Alpaca's error and logged as nothing worse than a client's mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from alpaca_compat.auth import StreamIdentity, stream_identity
from alpaca_compat.streams import wire
from alpaca_compat.streams.frames import write_frames
from alpaca_compat.streams.hub import MARKET_CHANNELS, get_hub
from alpaca_compat.symbols import asset_id_for, pair_symbol

logger = logging.getLogger(__name__)

# How long a dropped client has to take its last frames (the error, the close) before the
# server stops trying; the websocket's own ping timeout ends a client that never reads.
CLOSE_GRACE_SECONDS = 2.0
# Market data messages packed into one frame at most (Alpaca batches them too).
MAX_BATCH = 100
HUB_WAIT_SECONDS = 5.0
MAX_SYMBOL_LENGTH = 32

# WebSocket close codes.
POLICY_VIOLATION, MESSAGE_TOO_BIG, INTERNAL_ERROR = 1008, 1009, 1011


class Close:
    """The last item of an outbox: close the connection once what is before it was sent."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code, self.reason = code, reason


class Outbox:
    """What waits to be sent to one client, at most ``limit`` items (replies pass the limit:
    they answer the client's own messages, one each)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque = deque()
        self._ready = asyncio.Event()

    def put(self, item, *, reply: bool = False) -> bool:
        if not reply and len(self._items) >= self.limit:
            return False
        self._items.append(item)
        self._ready.set()
        return True

    async def take(self, most: int) -> list:
        await self._ready.wait()
        batch = []
        while self._items and len(batch) < most:
            item = self._items.popleft()
            batch.append(item)
            if isinstance(item, Close):
                break
        if not self._items:
            self._ready.clear()
        return batch


class StreamConsumer(AsyncWebsocketConsumer):
    """What both streams share: the outbox and its writer, the authentication deadline, the
    message size limit, the per-key connection limit and dropping a slow client."""

    kind = ""  # counts connections per key apart for each stream

    async def connect(self) -> None:
        self.hub = get_hub()
        self.outbox = Outbox(settings.STREAM_QUEUE_LENGTH)
        self.identity: StreamIdentity | None = None
        self.admitted = False
        self.closing = False
        self.binary = False  # the client's last frame was binary: answer in binary frames
        await self.accept()
        self.writer = asyncio.create_task(self._write())
        self.deadline = asyncio.create_task(self._authentication_deadline())
        self.opened()

    def opened(self) -> None:
        """Queue what the server says first, if anything."""

    async def disconnect(self, code) -> None:
        if not hasattr(self, "writer"):  # gone before it was accepted
            return
        self._leave()
        for task in (self.writer, self.deadline):
            task.cancel()

    def _leave(self) -> None:
        """Take nothing more from the hub, and free the key's connection slot at once: a
        client told to go may reconnect before its old socket is gone."""
        self.closing = True
        self.hub.forget(self, self.identity.user_id if self.identity else None)
        if self.admitted:
            self.hub.release((self.kind, self.identity.credential))
            self.admitted = False

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closing:
            return
        data = bytes_data if text_data is None else text_data
        self.binary = text_data is None
        size = len(data) if isinstance(data, bytes) else len(data.encode())
        if size > settings.STREAM_MAX_MESSAGE_BYTES:
            self.too_big()
            return
        try:
            await self.handle(data)
        except Exception:
            # A bug in answering one message: the client gets Alpaca's 500 and starts over,
            # the traceback goes to the log. Deliberately broad: nothing else may end the
            # connection without a word.
            logger.exception("stream: could not answer a %s message", self.kind)
            self.internal_error()

    async def handle(self, data: str | bytes) -> None:
        raise NotImplementedError

    # --- answering -------------------------------------------------------------------------

    def reply(self, item) -> None:
        self.outbox.put(item, reply=True)

    def close_after(self, item, code: int, reason: str = "") -> None:
        """Send ``item``, then close: nothing the client sends is read any more."""
        if self.closing:
            return
        self._leave()
        self.reply(item)
        self.reply(Close(code, reason))

    def too_big(self) -> None:
        raise NotImplementedError

    def internal_error(self) -> None:
        raise NotImplementedError

    def slow_client_message(self):
        raise NotImplementedError

    # --- what the hub calls --------------------------------------------------------------------

    def offer(self, item) -> None:
        if not self.closing and not self.outbox.put(item):
            self.drop_slow_client()

    def database_lost(self) -> None:
        self.close_after(wire.trading_error("internal server error"), INTERNAL_ERROR, "stream restarting")

    def drop_slow_client(self) -> None:
        """The outbox is full: the client reads slower than events come. It is dropped with
        Alpaca's 407 (slow client); what it missed it reads again after reconnecting."""
        self._leave()
        logger.warning("stream: dropping a slow %s client (%d messages waiting)", self.kind, self.outbox.limit)
        self.writer.cancel()
        asyncio.get_running_loop().create_task(self._last_words())

    async def _last_words(self) -> None:
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self._send_items([self.slow_client_message()])
                await self.close(code=POLICY_VIOLATION, reason="slow client")

    # --- the writer --------------------------------------------------------------------------

    async def _write(self) -> None:
        with contextlib.suppress(OSError):  # the client went away; disconnect() cleans up
            while True:
                batch = await self.outbox.take(MAX_BATCH)
                if await self._send_items(batch):
                    return

    async def _send_items(self, items: list) -> bool:
        """Send ``items``; True when one of them closed the connection."""
        raise NotImplementedError

    async def _send_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.send(bytes_data=frame)
        elif self.binary:
            await self.send(bytes_data=frame.encode())
        else:
            await self.send(text_data=frame)

    async def _authentication_deadline(self) -> None:
        await asyncio.sleep(settings.STREAM_AUTH_TIMEOUT_SECONDS)
        if self.identity is None and not self.closing:
            self.auth_timeout()

    def auth_timeout(self) -> None:
        raise NotImplementedError

    async def authenticate(self, **credentials) -> StreamIdentity | None:
        """The identity the credentials name (one query, on the hub's database thread)."""
        return await self.hub.run_sync(stream_identity, **credentials)

    def admit(self, identity: StreamIdentity) -> bool:
        """STREAM_CONNECTIONS_PER_KEY: False when this key has as many connections already."""
        if not self.hub.admit((self.kind, identity.credential)):
            return False
        self.identity, self.admitted = identity, True
        return True


# --- Trade updates -----------------------------------------------------------------------------


class TradeUpdatesConsumer(StreamConsumer):
    """``/stream``: JSON objects in text or binary frames, answered in the client's kind."""

    kind = "trade_updates"

    async def handle(self, data: str | bytes) -> None:
        message = _json_object(data)
        if message is None:
            self.reply(wire.trading_error("invalid syntax"))
            return
        action = message.get("action")
        if action in ("authenticate", "auth"):
            await self.on_authenticate(message)
        elif action == "listen":
            await self.on_listen(message)
        else:
            self.reply(wire.trading_error("unrecognized action"))

    async def on_authenticate(self, message: dict) -> None:
        if self.identity is not None:
            self.reply(wire.trading_error("already authenticated"))
            return
        if message["action"] == "auth":  # {"action": "auth", "key": K, "secret": S}
            credentials = {"key_id": message.get("key"), "secret": message.get("secret")}
        else:
            data = message.get("data")
            data = data if isinstance(data, dict) else {}
            if "oauth_token" in data:
                credentials = {"oauth_token": data.get("oauth_token")}
            else:
                credentials = {"key_id": data.get("key_id"), "secret": data.get("secret_key")}
        identity = await self.authenticate(**credentials)
        if self.closing:
            return
        if identity is None:
            self.reply(wire.authorization("unauthorized", message="access key verification failed"))
        elif not self.admit(identity):
            self.close_after(
                wire.authorization("unauthorized", message="connection limit exceeded"),
                POLICY_VIOLATION,
                "connection limit exceeded",
            )
        else:
            self.reply(wire.authorization("authorized"))

    async def on_listen(self, message: dict) -> None:
        if self.identity is None:
            self.reply(wire.authorization("unauthorized", action="listen"))
            return
        data = message.get("data")
        streams = data.get("streams") if isinstance(data, dict) else None
        if not isinstance(streams, list) or not all(isinstance(stream, str) for stream in streams):
            self.reply(wire.trading_error("invalid syntax"))
            return
        if wire.TRADE_UPDATES in streams:
            if not self.hub.live.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HUB_WAIT_SECONDS):
                        await self.hub.live.wait()
            if self.closing:
                return
            if not self.hub.live.is_set():
                self.database_lost()
                return
            # Listening before the acknowledgement: every event committed after it reaches the
            # client, and none committed before the listen began.
            try:
                await self.hub.listen_trades(self, self.identity.user_id)
            except DatabaseError:
                self.database_lost()
                return
            if self.closing:  # it left while the hub read the snapshot
                self.hub.stop_trades(self, self.identity.user_id)
                return
            self.reply(wire.listening([wire.TRADE_UPDATES]))
        else:
            self.hub.stop_trades(self, self.identity.user_id)
            self.reply(wire.listening([]))

    def too_big(self) -> None:
        self.close_after(wire.trading_error("message too big"), MESSAGE_TOO_BIG, "message too big")

    def internal_error(self) -> None:
        self.close_after(wire.trading_error("internal server error"), INTERNAL_ERROR)

    def slow_client_message(self):
        return wire.trading_error("slow client")

    def auth_timeout(self) -> None:
        self.close_after(wire.trading_error("auth timeout"), POLICY_VIOLATION, "auth timeout")

    async def _send_items(self, items: list) -> bool:
        # A batch of texts (most often an order's new and fill) in one socket write when the
        # server allows it (alpaca_compat/streams/frames.py); else one ASGI send each.
        if all(type(item) is str for item in items) and write_frames(self.base_send, items, binary=self.binary):
            return False
        for item in items:
            if isinstance(item, Close):
                await self.close(code=item.code, reason=item.reason)
                return True
            await self._send_frame(item)
        return False


# --- Market data ---------------------------------------------------------------------------------

# Alpaca's market data errors (code, msg).
INVALID_SYNTAX = (400, "invalid syntax")
NOT_AUTHENTICATED = (401, "not authenticated")
AUTH_FAILED = (402, "auth failed")
ALREADY_AUTHENTICATED = (403, "already authenticated")
AUTH_TIMEOUT = (404, "auth timeout")
SYMBOL_LIMIT = (405, "symbol limit exceeded")
CONNECTION_LIMIT = (406, "connection limit exceeded")
SLOW_CLIENT = (407, "slow client")
INSUFFICIENT_SUBSCRIPTION = (409, "insufficient subscription")
NOT_THIS_FEED = (410, "invalid subscribe action for this feed")
INTERNAL = (500, "internal error")

# Crypto channels Alpaca has and this service does not (no order book).
UNOFFERED_CHANNELS = {"orderbooks"}
# Channels of Alpaca's other feeds (stocks, news): alpaca-trade-api unsubscribes them too.
OTHER_FEED_CHANNELS = {"statuses", "lulds", "corrections", "cancelErrors", "news"}


def _json_object(data: str | bytes) -> dict | None:
    try:
        message = wire.JsonCodec.decode(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return message if isinstance(message, dict) else None


def canonical_symbol(symbol: str) -> str:
    """``BTC/USD`` for ``btc/usd`` or ``BTCUSD`` (how events name it); anything else as sent."""
    with contextlib.suppress(ValueError):
        uuid.UUID(symbol)
        return symbol  # an asset's UUID would need a query; it names no pair here
    asset_id = asset_id_for(symbol)
    return pair_symbol(asset_id) if asset_id else symbol


class MarketDataConsumer(StreamConsumer):
    """``/v1beta3/crypto/us`` and ``/v1beta2/crypto``: arrays of ``{"T": ...}`` messages, in
    msgpack when the upgrade request says ``Content-Type: application/msgpack``, else JSON."""

    kind = "market_data"

    def opened(self) -> None:
        headers = dict(self.scope.get("headers", []))
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        self.codec = wire.MsgpackCodec if content_type == b"application/msgpack" else wire.JsonCodec
        self.binary = self.codec.binary
        self.channels: dict[str, list[str]] = {channel: [] for channel in MARKET_CHANNELS}
        self.reply(wire.control(T="success", msg="connected"))

    def error(self, error: tuple[int, str]) -> wire.Message:
        return wire.error(*error)

    async def handle(self, data: str | bytes) -> None:
        try:
            message = self.codec.decode(data)
        except (ValueError, RecursionError, TypeError):  # msgpack's errors are ValueErrors
            message = None
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            await self.on_auth(message)
        elif action in ("subscribe", "unsubscribe"):
            self.on_subscription(message)
        else:
            self.reply(self.error(INVALID_SYNTAX))

    async def on_auth(self, message: dict) -> None:
        if self.identity is not None:
            self.reply(self.error(ALREADY_AUTHENTICATED))
            return
        identity = await self.authenticate(key_id=message.get("key"), secret=message.get("secret"))
        if self.closing:
            return
        if identity is None:
            self.reply(self.error(AUTH_FAILED))
        elif not self.admit(identity):
            self.close_after(self.error(CONNECTION_LIMIT), POLICY_VIOLATION, "connection limit exceeded")
        else:
            self.reply(wire.control(T="success", msg="authenticated"))

    def on_subscription(self, message: dict) -> None:
        if self.identity is None:
            self.reply(self.error(NOT_AUTHENTICATED))
            return
        asked: dict[str, list[str]] = {}
        for channel, symbols in message.items():
            if channel == "action":
                continue
            if not isinstance(symbols, list | tuple) or not all(
                isinstance(s, str) and 0 < len(s) <= MAX_SYMBOL_LENGTH for s in symbols
            ):
                self.reply(self.error(INVALID_SYNTAX))
                return
            if channel in UNOFFERED_CHANNELS or channel in OTHER_FEED_CHANNELS:
                if symbols and message["action"] == "subscribe":
                    unoffered = channel in UNOFFERED_CHANNELS
                    self.reply(self.error(INSUFFICIENT_SUBSCRIPTION if unoffered else NOT_THIS_FEED))
                    return
                continue
            if channel not in MARKET_CHANNELS:
                self.reply(self.error(INVALID_SYNTAX))
                return
            asked[channel] = [canonical_symbol(s) for s in symbols]
        channels = {channel: list(symbols) for channel, symbols in self.channels.items()}
        for channel, symbols in asked.items():
            if message["action"] == "subscribe":
                channels[channel] += [s for s in dict.fromkeys(symbols) if s not in channels[channel]]
            else:
                channels[channel] = [s for s in channels[channel] if s not in symbols]
        distinct = {symbol for symbols in channels.values() for symbol in symbols}
        if len(distinct) > settings.STREAM_SYMBOLS_PER_CONNECTION:
            self.reply(self.error(SYMBOL_LIMIT))
            return
        self.channels = channels
        self.hub.subscribe(self, channels)
        self.reply(self.subscription())

    def subscription(self) -> wire.Message:
        c = self.channels
        return wire.control(
            T="subscription",
            trades=c["trades"],
            quotes=c["quotes"],
            orderbooks=[],
            bars=c["bars"],
            updatedBars=c["updatedBars"],
            dailyBars=c["dailyBars"],
        )

    def too_big(self) -> None:
        self.close_after(self.error(INVALID_SYNTAX), MESSAGE_TOO_BIG, "message too big")

    def internal_error(self) -> None:
        self.close_after(self.error(INTERNAL), INTERNAL_ERROR)

    def slow_client_message(self):
        return self.error(SLOW_CLIENT)

    def auth_timeout(self) -> None:
        self.close_after(self.error(AUTH_TIMEOUT), POLICY_VIOLATION, "auth timeout")

    def database_lost(self) -> None:  # quotes resume with the next price; nothing to re-read
        return

    async def _send_items(self, items: list) -> bool:
        """Market data travels batched, a reply (``success``, ``subscription``, ``error``) in a
        frame of its own, as Alpaca sends them: CCXT reads a frame whose first message is a
        reply as that reply only, and would drop the quotes behind it."""
        messages: list[wire.Message] = []
        for item in items:
            if isinstance(item, Close) or item.is_reply:
                if messages:
                    await self._send_frame(self.codec.frame(messages))
                    messages = []
                if isinstance(item, Close):
                    await self.close(code=item.code, reason=item.reason)
                    return True
                await self._send_frame(self.codec.frame([item]))
            else:
                messages.append(item)
        if messages:
            await self._send_frame(self.codec.frame(messages))
        return False


class NoSuchStream(AsyncWebsocketConsumer):
    """Any other path: the upgrade is refused (403), as Django answers an unknown URL 404."""

    async def connect(self) -> None:
        await self.close()
