"""Market data over HTTP (README, "The API in short"), from the recorded price history: the latest
price of assets and OHLC bars. Views parse the query string, call one selector, render."""

from __future__ import annotations

import base64
import re
from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.selectors import Timeframe, get_asset_ids, get_bars, get_current_prices
from core.api.fields import EnumValueField, InstantField, PriceField, StrictIntegerField, TimestampField
from core.api.openapi import error_responses
from core.api.replicas import ReplicaReadMixin
from core.api.serializers import InputSerializer, ReadSerializer, parse_query
from core.api.times import parse_instant

MAX_ASSETS = 100
DEFAULT_BARS = 1000
MAX_BARS = 10_000


# Answered as `TimestampField` writes them, where a value is not a serializer's field.
iso = TimestampField().to_representation


_ASSET_ID = re.compile(r"[A-Z0-9]{1,16}", re.ASCII)


class AssetIdsField(serializers.CharField):
    """One asset id or a comma-separated list (``BTC,ETH``), upper-cased, each an asset of
    the inventory."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        ids = list(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
        if not ids:
            raise serializers.ValidationError("Name at least one asset id.")
        if len(ids) > MAX_ASSETS:
            raise serializers.ValidationError(f"At most {MAX_ASSETS} asset ids.")
        known = set(get_asset_ids(among=ids))
        unknown = [asset_id for asset_id in ids if asset_id not in known]
        if unknown:
            raise serializers.ValidationError(f"Unknown asset id(s): {', '.join(unknown)}.")
        return ids


# --- latest ------------------------------------------------------------------------------


class LatestQuerySerializer(InputSerializer):
    asset_id = AssetIdsField(max_length=2000, help_text="One asset id or a comma-separated list: BTC,ETH.")


class LatestPriceSerializer(ReadSerializer):
    asset_id = serializers.CharField()
    price = PriceField(help_text="USD per unit, without trailing zeros: the mid.")
    bid = PriceField(help_text="price less half the deployment's spread (docs: Fill model).")
    ask = PriceField(help_text="price plus half the deployment's spread.")
    as_of = TimestampField(help_text="When the price was observed.")
    source = serializers.CharField(help_text="The provider that quoted it: simulated or coingecko.")


LatestResponse = inline_serializer("MarketLatest", {"prices": LatestPriceSerializer(many=True)})


class MarketLatestView(ReplicaReadMixin, APIView):
    """The current price of each asset asked, and when it was observed: the price `assets/`
    shows and orders trade on (or the last recorded one, if the history is newer). Assets
    never priced are left out. Reads the database only: it never waits on the provider."""

    @extend_schema(
        parameters=[LatestQuerySerializer],
        responses={200: LatestResponse, **error_responses(400)},
        examples=[
            OpenApiExample(
                "BTC and ETH",
                response_only=True,
                value={
                    "prices": [
                        {
                            "asset_id": "BTC",
                            "price": "63389.3",
                            "bid": "63389.3",
                            "ask": "63389.3",
                            "as_of": "2026-11-27T17:52:05Z",
                            "source": "simulated",
                        },
                        {
                            "asset_id": "ETH",
                            "price": "2481.07",
                            "bid": "2481.07",
                            "ask": "2481.07",
                            "as_of": "2026-11-27T17:52:05Z",
                            "source": "simulated",
                        },
                    ]
                },
            )
        ],
    )
    def get(self, request):
        asset_ids = parse_query(LatestQuerySerializer, request)["asset_id"]
        latest = get_current_prices(asset_ids=asset_ids)
        prices = [latest[asset_id] for asset_id in asset_ids if asset_id in latest]
        return Response({"prices": LatestPriceSerializer(prices, many=True).data})


# --- bars --------------------------------------------------------------------------------


class BarsQuerySerializer(InputSerializer):
    asset_id = AssetIdsField(max_length=2000, help_text="One asset id or a comma-separated list: BTC,ETH.")
    timeframe = EnumValueField(
        Timeframe, help_text="Bucket size: 1Min, 5Min, 15Min, 1H or 1D (buckets align to UTC midnight)."
    )
    start = InstantField(required=False, help_text="First instant, ISO 8601 (default: limit buckets before end).")
    end = InstantField(required=False, help_text="Instant the bars end before, ISO 8601 (default: now).")
    limit = StrictIntegerField(
        required=False, default=DEFAULT_BARS, min_value=1, max_value=MAX_BARS, help_text="Bars per page."
    )
    page_token = serializers.CharField(required=False, max_length=200, help_text="next_page_token of the last page.")

    def validate_page_token(self, value: str) -> tuple[str, datetime]:
        """``(asset id, bucket start)`` from a token ``_page_token`` wrote; the time is read as
        every time in a query is (``core.api.times``), so a forged one far in the future is a
        400, not an OverflowError when the next bucket is counted."""
        try:
            asset_id, bar, stamp = base64.b64decode(value, altchars=b"-_", validate=True).decode("ascii").partition("|")
            bucket = parse_instant(stamp)
        except ValueError:  # not base64 of ASCII (binascii.Error, UnicodeDecodeError), InvalidTime
            raise serializers.ValidationError("Not a page token this endpoint gave.") from None
        if not bar or _ASSET_ID.fullmatch(asset_id) is None:
            raise serializers.ValidationError("Not a page token this endpoint gave.")
        return asset_id, bucket

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start")
        if start is None:  # in the calendar: times in queries leave room for it (core.api.times)
            start = end - attrs["timeframe"].step * attrs["limit"]
        if start >= end:
            raise serializers.ValidationError({"start": ["start must be before end."]})
        return {**attrs, "start": start, "end": end}


class BarSerializer(ReadSerializer):
    asset_id = serializers.CharField()
    timestamp = TimestampField(help_text="The bucket's start.")
    open = PriceField()
    high = PriceField()
    low = PriceField()
    close = PriceField()
    count = serializers.IntegerField(help_text="Recorded prices in the bucket.")


BarsResponse = inline_serializer(
    "MarketBars",
    {
        "timeframe": serializers.CharField(),
        "start": TimestampField(),
        "end": TimestampField(),
        "bars": BarSerializer(many=True),
        "next_page_token": serializers.CharField(allow_null=True),
    },
)


def _page_token(asset_id: str, bucket: datetime) -> str:
    return base64.urlsafe_b64encode(f"{asset_id}|{bucket.isoformat()}".encode()).decode()


class MarketBarsView(ReplicaReadMixin, APIView):
    """OHLC bars of the recorded prices, by asset then time; a bucket with no recorded price
    has no bar. More than ``limit`` bars: pass ``next_page_token`` back as ``page_token``."""

    @extend_schema(
        parameters=[BarsQuerySerializer, OpenApiParameter("page_token", str)],
        responses={200: BarsResponse, **error_responses(400)},
        examples=[
            OpenApiExample(
                "Two minutes of BTC",
                response_only=True,
                value={
                    "timeframe": "1Min",
                    "start": "2026-11-27T17:50:00Z",
                    "end": "2026-11-27T17:52:00Z",
                    "bars": [
                        {
                            "asset_id": "BTC",
                            "timestamp": "2026-11-27T17:50:00Z",
                            "open": "63380.1",
                            "high": "63395.42",
                            "low": "63380.1",
                            "close": "63395.42",
                            "count": 2,
                        },
                        {
                            "asset_id": "BTC",
                            "timestamp": "2026-11-27T17:51:00Z",
                            "open": "63389.3",
                            "high": "63389.3",
                            "low": "63389.3",
                            "close": "63389.3",
                            "count": 1,
                        },
                    ],
                    "next_page_token": None,
                },
            )
        ],
    )
    def get(self, request):
        query = parse_query(BarsQuerySerializer, request)
        page = get_bars(
            asset_ids=query["asset_id"],
            timeframe=query["timeframe"],
            start=query["start"],
            end=query["end"],
            limit=query["limit"],
            after=query.get("page_token"),
        )
        return Response(
            {
                "timeframe": query["timeframe"].value,
                "start": iso(query["start"]),
                "end": iso(query["end"]),
                "bars": BarSerializer(page.bars, many=True).data,
                "next_page_token": _page_token(*page.next_after) if page.next_after else None,
            }
        )
