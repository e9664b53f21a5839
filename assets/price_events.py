"""Each newly accepted market price, announced to every process (docs/DESIGN.md, "Domain events").

Where quotes are accepted (``assets.prices.refresh_quotes``, once the price guard has judged
a fetch, and ``store_quotes``), ``announce_prices`` sends them on the
``price_events`` channel with ``pg_notify`` (``core.notify``): at once when no transaction is
open, at commit otherwise. The market data streams turn them into quotes. A quote's bid and
ask are its price less and plus half the deployment's spread (docs/DESIGN.md, "Fill model").

Payload: ``{"asset_id": "BTC", "price": "63389.3", "bid": "63389.3", "ask": "63389.3",
"as_of": "2026-11-27T17:52:05.000000Z", "source": "simulated"}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from assets.quotes import Quote, market_bid_ask
from core.notify import decimal_text, notify, parse_decimal, parse_time, time_text

PRICE_EVENTS = "price_events"


@dataclass(frozen=True)
class PriceEvent:
    asset_id: str
    price: Decimal
    bid: Decimal
    ask: Decimal
    as_of: datetime
    source: str

    @classmethod
    def of(cls, quote: Quote) -> PriceEvent:
        return cls(
            asset_id=quote.asset_id,
            price=quote.price,
            bid=market_bid_ask(quote.price)[0],
            ask=market_bid_ask(quote.price)[1],
            as_of=quote.as_of,
            source=quote.source,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "asset_id": self.asset_id,
                "price": decimal_text(self.price),
                "bid": decimal_text(self.bid),
                "ask": decimal_text(self.ask),
                "as_of": time_text(self.as_of),
                "source": self.source,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> PriceEvent:
        """Raises ValueError (and its subclasses), KeyError or TypeError on a payload that is
        not a price event."""
        data = json.loads(text)
        return cls(
            asset_id=str(data["asset_id"]),
            price=parse_decimal(data["price"]),
            bid=parse_decimal(data["bid"]),
            ask=parse_decimal(data["ask"]),
            as_of=parse_time(data["as_of"]),
            source=str(data["source"]),
        )


def announce_prices(quotes: Iterable[Quote]) -> None:
    """Announce newly accepted quotes, in the order given, in one statement."""
    notify(PRICE_EVENTS, [PriceEvent.of(quote).to_json() for quote in quotes])
