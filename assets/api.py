"""The asset inventory over HTTP: each asset with its current price."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django_filters import rest_framework as filters
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response

from assets.models import Asset
from assets.prices import Quote, get_quotes
from assets.quotes import market_bid_ask
from core.api.defaults import StrictCursorPagination
from core.api.fields import PriceField, TimestampField
from core.api.serializers import ReadSerializer


@dataclass(frozen=True, slots=True)
class AssetWithQuote:
    """An asset with the quote the view fetched for its whole page (None: no price at all)."""

    asset: Asset
    quote: Quote | None

    @property
    def current_price(self) -> Decimal | None:
        return None if self.quote is None else self.quote.price

    @property
    def bid(self) -> Decimal | None:
        return None if self.quote is None else market_bid_ask(self.quote.price)[0]

    @property
    def ask(self) -> Decimal | None:
        return None if self.quote is None else market_bid_ask(self.quote.price)[1]

    @property
    def price_source(self) -> str | None:
        return None if self.quote is None else self.quote.source

    @property
    def price_as_of(self) -> datetime | None:
        return None if self.quote is None else self.quote.as_of

    @property
    def price_stale(self) -> bool:
        return True if self.quote is None else self.quote.stale


class AssetSerializer(ReadSerializer):
    asset_id = serializers.CharField(source="asset.asset_id", help_text="Upper-case symbol, e.g. BTC.")
    name = serializers.CharField(source="asset.name")
    is_active = serializers.BooleanField(source="asset.is_active", help_text="Tradable.")
    quantity_decimals = serializers.IntegerField(
        source="asset.quantity_decimals", help_text="The quantity step: 8 means 0.00000001."
    )
    coingecko_id = serializers.CharField(source="asset.coingecko_id")
    current_price = PriceField(allow_null=True, help_text="The mid price: what an ideal fill trades at.")
    bid = PriceField(allow_null=True, help_text="current_price less half the deployment's spread.")
    ask = PriceField(allow_null=True, help_text="current_price plus half the deployment's spread.")
    price_source = serializers.CharField(allow_null=True)
    price_as_of = TimestampField(allow_null=True)
    price_stale = serializers.BooleanField()


def _priced(assets: list[Asset]) -> list[AssetWithQuote]:
    quotes = get_quotes(assets)  # one price lookup for the page
    return [AssetWithQuote(asset, quotes.get(asset.asset_id)) for asset in assets]


class AssetPagination(StrictCursorPagination):
    ordering = ("asset_id",)
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class AssetFilter(filters.FilterSet):
    is_active = filters.BooleanFilter()

    class Meta:
        model = Asset
        fields = ["is_active"]


class AssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The inventory, with current prices. `?is_active=true` lists only tradable assets."""

    serializer_class = AssetSerializer
    pagination_class = AssetPagination
    lookup_field = "asset_id"
    filterset_class = AssetFilter
    queryset = Asset.objects.all()

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(AssetSerializer(_priced(page), many=True).data)

    def retrieve(self, request, *args, **kwargs):
        self.kwargs["asset_id"] = self.kwargs["asset_id"].upper()
        return Response(AssetSerializer(_priced([self.get_object()])[0]).data)
