"""Alpaca's crypto market data (``/v1beta3/crypto/us/``) from our prices.

There is no order book here: a quote's bid and ask are the last price less and plus half the
deployment's spread (docs/DESIGN.md, "Fill model"), sizes and volumes are 0 where nothing says
otherwise. Numbers are JSON numbers, as Alpaca sends them (alpaca-py
reads them as floats). Anyone may read market data, as on Alpaca; a key that is sent must be valid.
"""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime, timedelta

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from alpaca_compat import errors, render
from alpaca_compat.symbols import asset_id_for, pair_hint, pair_symbol
from alpaca_compat.views import AlpacaView, Timestamp, comma_list
from assets.models import Asset
from assets.prices import Quote, get_quotes
from assets.quotes import market_bid_ask
from assets.selectors import Bar, Timeframe, bucket_start, get_assets, get_bars, get_latest_prices
from core.api.fields import StrictIntegerField
from core.api.serializers import ShallowFieldsSerializer
from core.api.throttles import MarketDataThrottle
from core.api.times import InvalidTime, from_epoch_seconds

MAX_SYMBOLS = 100
DEFAULT_BARS, MAX_BARS = 1000, 10_000
# Alpaca's timeframe names (alpaca-py sends "1Min", "1Hour", "1Day") for the buckets we keep.
TIMEFRAMES = {
    "1Min": Timeframe.MIN_1,
    "1T": Timeframe.MIN_1,
    "5Min": Timeframe.MIN_5,
    "5T": Timeframe.MIN_5,
    "15Min": Timeframe.MIN_15,
    "15T": Timeframe.MIN_15,
    "1Hour": Timeframe.HOUR_1,
    "1H": Timeframe.HOUR_1,
    "1Day": Timeframe.DAY_1,
    "1D": Timeframe.DAY_1,
}


class SymbolsQuery(ShallowFieldsSerializer):
    symbols = serializers.CharField()


class MarketDataView(AlpacaView):
    """Open without a key, as Alpaca's crypto data is; an anonymous caller also counts against
    THROTTLE_ANON_MARKET_RATE per client address, and every request's work is bounded by its
    ``limit`` (``assets.selectors.get_bars``), never by the range it names."""

    permission_classes = [AllowAny]
    throttle_classes = [MarketDataThrottle]
    query_class = SymbolsQuery

    def params(self) -> dict:
        if not hasattr(self, "_params"):
            self._params = self.query(self.query_class)
        return self._params

    def assets(self) -> list[Asset]:
        symbols = comma_list(self.params()["symbols"])
        if len(symbols) > MAX_SYMBOLS:
            raise errors.invalid(f"at most {MAX_SYMBOLS} symbols")
        asset_ids = {}
        for symbol in symbols:
            asset_id = asset_id_for(symbol)
            if asset_id is None:
                raise errors.AlpacaError(400, errors.INVALID_VALUE, f"invalid symbol: {symbol}{pair_hint(symbol)}")
            asset_ids[asset_id] = symbol
        return get_assets(asset_ids=asset_ids)

    def quotes(self) -> dict[str, Quote]:
        return get_quotes(self.assets())


def quote_json(quote: Quote) -> dict:
    bid, ask = market_bid_ask(quote.price)
    return {"t": render.iso(quote.as_of), "bp": float(bid), "bs": 0, "ap": float(ask), "as": 0}


def trade_json(quote: Quote) -> dict:
    return {"t": render.iso(quote.as_of), "p": float(quote.price), "s": 0, "i": 0, "tks": "B"}


class LatestQuotesView(MarketDataView):
    def get(self, request):
        return Response({"quotes": {pair_symbol(a): quote_json(q) for a, q in self.quotes().items()}})


class LatestTradesView(MarketDataView):
    def get(self, request):
        return Response({"trades": {pair_symbol(a): trade_json(q) for a, q in self.quotes().items()}})


def bar_json(bar: Bar) -> dict:
    # No volume is known: v is 0 and vw the bar's typical price, (high + low + close) / 3.
    typical = (bar.high + bar.low + bar.close) / 3
    return {
        "t": render.iso(bar.timestamp),
        "o": float(bar.open),
        "h": float(bar.high),
        "l": float(bar.low),
        "c": float(bar.close),
        "v": 0,
        "n": bar.count,
        "vw": float(typical),
    }


def _bars_of(asset_id: str, timeframe: Timeframe, start: datetime, end: datetime) -> list[Bar]:
    return get_bars(asset_ids=[asset_id], timeframe=timeframe, start=start, end=end, limit=MAX_BARS).bars


def _latest_bar(asset_id: str, as_of: datetime) -> Bar | None:
    """The 1Min bar of the asset's last recorded price."""
    start = bucket_start(as_of, Timeframe.MIN_1)
    bars = _bars_of(asset_id, Timeframe.MIN_1, start, start + Timeframe.MIN_1.step)
    return bars[-1] if bars else None


class LatestBarsView(MarketDataView):
    def get(self, request):
        latest = get_latest_prices(asset_ids=[asset.asset_id for asset in self.assets()])
        bars = {asset_id: _latest_bar(asset_id, price.as_of) for asset_id, price in latest.items()}
        return Response({"bars": {pair_symbol(a): bar_json(bar) for a, bar in bars.items() if bar is not None}})


class BarsQuery(ShallowFieldsSerializer):
    symbols = serializers.CharField()
    timeframe = serializers.ChoiceField(list(TIMEFRAMES))
    start = Timestamp(required=False)
    end = Timestamp(required=False)
    limit = StrictIntegerField(min_value=1, max_value=MAX_BARS, required=False, default=DEFAULT_BARS)
    page_token = serializers.CharField(required=False)
    sort = serializers.ChoiceField(["asc"], required=False)
    currency = serializers.ChoiceField(["USD"], required=False)


def _page_token(asset_id: str, bucket: datetime) -> str:
    return base64.urlsafe_b64encode(f"{asset_id}|{math.floor(bucket.timestamp())}".encode()).decode()


_TOKEN_ASSET = re.compile(r"[A-Z0-9]{1,16}", re.ASCII)


def _after(token: str) -> tuple[str, datetime]:
    """What ``_page_token`` wrote, read strictly: its time as every time in a query is
    (``core.api.times``), so a forged one far in the future is a 400, not an OverflowError."""
    try:
        text = base64.b64decode(token, altchars=b"-_", validate=True).decode("ascii")
        asset_id, bar, seconds = text.partition("|")
        bucket = from_epoch_seconds(seconds)
    except (ValueError, InvalidTime):  # not base64 of ASCII (binascii.Error, UnicodeDecodeError)
        raise errors.bad_request("invalid page_token") from None
    if not bar or _TOKEN_ASSET.fullmatch(asset_id) is None:
        raise errors.bad_request("invalid page_token")
    return asset_id, bucket


class BarsView(MarketDataView):
    """OHLC bars of the recorded prices, by symbol then time; ``next_page_token`` continues
    (alpaca-py follows it). Buckets without a recorded price have no bar, as on Alpaca. A page
    does at most what ``limit`` buckets need (``assets.selectors.get_bars``), so it may hold
    fewer bars than ``limit`` and still name a next page."""

    query_class = BarsQuery

    def get(self, request):
        params = self.params()
        timeframe = TIMEFRAMES[params["timeframe"]]
        now = datetime.now(UTC)
        start = params.get("start") or now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = params.get("end") or now
        if end < start:
            raise errors.invalid("end should not be before start")
        after = _after(params["page_token"]) if "page_token" in params else None
        page = get_bars(
            asset_ids=[asset.asset_id for asset in self.assets()],
            timeframe=timeframe,
            start=start,
            end=end,
            limit=params["limit"],
            after=after,
        )
        grouped: dict[str, list[dict]] = {}
        for bar in page.bars:
            grouped.setdefault(pair_symbol(bar.asset_id), []).append(bar_json(bar))
        token = _page_token(*page.next_after) if page.next_after else None
        return Response({"bars": grouped, "next_page_token": token})


class SnapshotsView(MarketDataView):
    """The last trade and quote (the last price), the last minute bar, today's and yesterday's
    daily bars (UTC days) of each symbol."""

    def get(self, request):
        assets = self.assets()
        quotes = get_quotes(assets)
        latest = get_latest_prices(asset_ids=[asset.asset_id for asset in assets])
        snapshots = {}
        for asset in assets:
            quote = quotes.get(asset.asset_id)
            if quote is None:
                continue
            today = bucket_start(quote.as_of, Timeframe.DAY_1)
            days = _bars_of(asset.asset_id, Timeframe.DAY_1, today - timedelta(days=1), today + timedelta(days=1))
            daily = {bar.timestamp: bar_json(bar) for bar in days}
            recorded = latest.get(asset.asset_id)
            minute = _latest_bar(asset.asset_id, recorded.as_of) if recorded else None
            snapshots[pair_symbol(asset.asset_id)] = {
                "latestTrade": trade_json(quote),
                "latestQuote": quote_json(quote),
                "minuteBar": bar_json(minute) if minute else None,
                "dailyBar": daily.get(today),
                "prevDailyBar": daily.get(today - timedelta(days=1)),
            }
        return Response({"snapshots": snapshots})
