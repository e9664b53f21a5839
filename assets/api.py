"""The asset inventory over HTTP: each asset with its current price."""

from rest_framework import mixins, serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from assets.models import Asset
from assets.prices import get_quotes

PRICE_FORMAT = serializers.DecimalField(max_digits=30, decimal_places=12)


class AssetSerializer(serializers.ModelSerializer):
    current_price = serializers.SerializerMethodField()
    price_source = serializers.SerializerMethodField()
    price_as_of = serializers.SerializerMethodField()
    price_stale = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = [
            "asset_id",
            "name",
            "is_active",
            "quantity_decimals",
            "coingecko_id",
            "current_price",
            "price_source",
            "price_as_of",
            "price_stale",
        ]

    # The quotes were fetched once for the whole page by the view (context["quotes"]):
    # these methods only look them up, they never query.
    def _quote(self, asset):
        return self.context.get("quotes", {}).get(asset.asset_id)

    def get_current_price(self, asset) -> str | None:
        quote = self._quote(asset)
        return None if quote is None else PRICE_FORMAT.to_representation(quote.price)

    def get_price_source(self, asset) -> str | None:
        quote = self._quote(asset)
        return None if quote is None else quote.source

    def get_price_as_of(self, asset) -> str | None:
        quote = self._quote(asset)
        return None if quote is None else serializers.DateTimeField().to_representation(quote.as_of)

    def get_price_stale(self, asset) -> bool:
        quote = self._quote(asset)
        return True if quote is None else quote.stale


class AssetPagination(CursorPagination):
    ordering = ("asset_id",)
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class AssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The inventory, with current prices. `?is_active=true` lists only tradable assets."""

    serializer_class = AssetSerializer
    pagination_class = AssetPagination
    lookup_field = "asset_id"
    filterset_fields = ["is_active"]
    queryset = Asset.objects.all()

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "quotes": get_quotes(page)}
        return self.get_paginated_response(self.get_serializer(page, many=True, context=context).data)

    def retrieve(self, request, *args, **kwargs):
        self.kwargs["asset_id"] = self.kwargs["asset_id"].upper()
        asset = self.get_object()
        context = {**self.get_serializer_context(), "quotes": get_quotes([asset])}
        return Response(self.get_serializer(asset, context=context).data)
