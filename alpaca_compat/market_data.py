"""Alpaca's crypto market data (``/v1beta3/crypto/us/``) from our prices.

There is no order book here: a quote's bid and ask are both the last price, sizes and volumes
are 0 where nothing says otherwise. Numbers are JSON numbers, as Alpaca sends them (alpaca-py
reads them as floats). Anyone may read market data, as on Alpaca; a key that is sent must be valid.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from alpaca_compat import errors, render
from alpaca_compat.symbols import asset_id_for, pair_symbol
from alpaca_compat.views import AlpacaView, comma_list
from assets.models import Asset
from assets.prices import Quote, get_quotes

MAX_SYMBOLS = 100


class SymbolsQuery(serializers.Serializer):
    symbols = serializers.CharField()


class MarketDataView(AlpacaView):
    permission_classes = [AllowAny]

    def assets(self) -> list[Asset]:
        symbols = comma_list(self.query(SymbolsQuery)["symbols"])
        if len(symbols) > MAX_SYMBOLS:
            raise errors.invalid(f"at most {MAX_SYMBOLS} symbols")
        asset_ids = {}
        for symbol in symbols:
            asset_id = asset_id_for(symbol)
            if asset_id is None:
                raise errors.AlpacaError(400, errors.INVALID_VALUE, f"invalid symbol: {symbol}")
            asset_ids[asset_id] = symbol
        return list(Asset.objects.filter(asset_id__in=asset_ids).order_by("asset_id"))

    def quotes(self) -> dict[str, Quote]:
        return get_quotes(self.assets())


def quote_json(quote: Quote) -> dict:
    price = float(quote.price)
    return {"t": render.iso(quote.as_of), "bp": price, "bs": 0, "ap": price, "as": 0}


def trade_json(quote: Quote) -> dict:
    return {"t": render.iso(quote.as_of), "p": float(quote.price), "s": 0, "i": 0, "tks": "B"}


class LatestQuotesView(MarketDataView):
    def get(self, request):
        return Response({"quotes": {pair_symbol(a): quote_json(q) for a, q in self.quotes().items()}})


class LatestTradesView(MarketDataView):
    def get(self, request):
        return Response({"trades": {pair_symbol(a): trade_json(q) for a, q in self.quotes().items()}})
