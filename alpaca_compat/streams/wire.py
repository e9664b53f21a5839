"""The streams' messages in Alpaca's shapes, and the two codecs of the market data stream.

Trade updates are JSON objects (``{"stream": "trade_updates", "data": {...}}``), whose
``order`` is what ``render.order_json`` (``GET /v2/orders/{id}``) answered at that moment,
rendered from the event's snapshot with no query and no model instance. Market data frames
are arrays of ``{"T": ...}`` messages, JSON (times RFC 3339) or msgpack (times as msgpack
Timestamps), as the client chose with its upgrade request's ``Content-Type``. alpaca-py reads
both (alpaca/trading/stream.py, alpaca/data/live/websocket.py); CCXT reads the JSON.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

import msgpack
import orjson

from alpaca_compat import render
from alpaca_compat.symbols import pair_symbol
from assets.price_events import PriceEvent
from assets.selectors import Bar
from orders.events import Event, OrderEvent
from orders.models import Order

TRADE_UPDATES = "trade_updates"
# A fixed namespace: an event's execution_id must be the same whichever process renders it.
EXECUTION_NAMESPACE = uuid.UUID("9b8e4c1f-3a5d-5e7b-8c2a-6f1d0e9b7a43")


def _json(value: dict | list) -> str:
    # Compact, UTF-8 as it is. orjson, as a trade update is rendered for every event of a
    # listening account on the event loop that also serves requests (docs/DESIGN.md, "Streams").
    return orjson.dumps(value).decode()


# --- Trade updates -------------------------------------------------------------------------


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without building a UUID: a third of its time, for
    one id per trade update on the event loop (tests/alpaca_compat/streams/test_wire.py)."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])  # noqa: S324 - RFC 4122's
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def execution_id(event: OrderEvent) -> str:
    """A UUID per event (alpaca-py's ``TradeUpdate.execution_id``): from the fill's id for
    fills, from the order, the event and its time otherwise."""
    if event.execution_id is not None:
        return uuid5_text(EXECUTION_NAMESPACE, f"fill:{event.execution_id}")
    return uuid5_text(EXECUTION_NAMESPACE, f"{event.order['order_id']}:{event.event}:{event.order['updated_at']}")


# The engine's event words (orders.events.Event) that Alpaca spells otherwise.
ALPACA_EVENTS = {Event.CANCELLED: "canceled", Event.PARTLY_FILLED: "partial_fill"}


def trade_update(event: OrderEvent) -> str:
    """The trade update of ``event`` as JSON text."""
    return _json(
        {
            "stream": TRADE_UPDATES,
            "data": {
                "event": ALPACA_EVENTS.get(event.event, event.event),
                "execution_id": execution_id(event),
                "timestamp": render.iso(event.at),
                "price": render.plain(event.fill_price),
                "qty": render.plain(event.fill_quantity),
                "position_qty": render.plain(event.position_quantity),
                "order": render.order_json_of_snapshot(event.order),
            },
        }
    )


def authorization(status: str, *, action: str = "authenticate", message: str | None = None) -> str:
    data = {"status": status, "action": action}
    if message is not None:
        data["message"] = message
    return _json({"stream": "authorization", "data": data})


def listening(streams: list[str]) -> str:
    return _json({"stream": "listening", "data": {"streams": streams}})


def trading_error(message: str) -> str:
    return _json({"action": "error", "data": {"error_message": message}})


# --- Market data ----------------------------------------------------------------------------


class Message:
    """One market data message (a ``{"T": ...}`` dict whose ``"t"`` is a datetime), encoded
    once per codec however many connections it goes to."""

    __slots__ = ("_json", "_msgpack", "body", "is_reply")

    def __init__(self, body: dict, *, is_reply: bool = False) -> None:
        self.body = body
        self.is_reply = is_reply  # an answer to the client (control, error), not market data
        self._json: str | None = None
        self._msgpack: bytes | None = None

    def as_json(self) -> str:
        if self._json is None:
            body = self.body
            if isinstance(body.get("t"), datetime):
                body = {**body, "t": render.iso(body["t"])}
            self._json = _json(body)
        return self._json

    def as_msgpack(self) -> bytes:
        if self._msgpack is None:
            body = self.body
            if isinstance(body.get("t"), datetime):
                body = {**body, "t": msgpack.Timestamp.from_datetime(body["t"])}
            self._msgpack = msgpack.packb(body)
        return self._msgpack


class JsonCodec:
    binary = False

    @staticmethod
    def decode(data: str | bytes):
        return json.loads(data)

    @staticmethod
    def frame(messages: list[Message]) -> str:
        return "[" + ",".join(message.as_json() for message in messages) + "]"


class MsgpackCodec:
    binary = True

    @staticmethod
    def decode(data: str | bytes):
        if isinstance(data, str):
            data = data.encode()
        return msgpack.unpackb(data, raw=False, strict_map_key=True, timestamp=3)

    @staticmethod
    def frame(messages: list[Message]) -> bytes:
        packer = msgpack.Packer()
        return packer.pack_array_header(len(messages)) + b"".join(message.as_msgpack() for message in messages)


def control(**body) -> Message:
    return Message(body, is_reply=True)


def error(code: int, msg: str) -> Message:
    return Message({"T": "error", "code": code, "msg": msg}, is_reply=True)


def quote(event: PriceEvent) -> Message:
    # Sizes are unknown (no order book): 0, as the REST quotes say.
    return Message(
        {
            "T": "q",
            "S": pair_symbol(event.asset_id),
            "bp": float(event.bid),
            "bs": 0,
            "ap": float(event.ask),
            "as": 0,
            "t": event.as_of,
        }
    )


def trade(event: OrderEvent) -> Message:
    """A fill of this service as a market trade, with nothing that names the account or the
    order: the symbol, price, size, time, the fill's number and the taker's side."""
    order = event.order
    try:
        number = int(event.execution_id)
    except (TypeError, ValueError):
        number = 0
    return Message(
        {
            "T": "t",
            "S": pair_symbol(order["asset_id"]),
            "p": float(event.fill_price),
            "s": float(event.fill_quantity),
            "t": event.at,
            "i": number,
            "tks": "B" if order["order_type"] == Order.Type.BUY else "S",
        }
    )


def is_fill(event: OrderEvent) -> bool:
    return event.event in Event.FILLS and event.fill_price is not None and event.fill_quantity is not None


def bar(kind: str, value: Bar) -> Message:
    """``kind`` is ``b`` (a minute bar), ``u`` (a minute bar changed after it was sent) or
    ``d`` (today's bar so far). No volume is known: v is 0 and vw the typical price."""
    typical = (value.high + value.low + value.close) / 3
    return Message(
        {
            "T": kind,
            "S": pair_symbol(value.asset_id),
            "o": float(value.open),
            "h": float(value.high),
            "l": float(value.low),
            "c": float(value.close),
            "v": 0,
            "t": value.timestamp,
            "n": value.count,
            "vw": float(typical),
        }
    )
