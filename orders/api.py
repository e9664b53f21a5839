"""Orders over HTTP: place (market or limit), list, show and cancel."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.errors import OwnerScopedMixin
from core.api.fields import EnumField, PriceField, QuantityField, TimestampField, UsdField
from core.api.filters import EnumFilter
from core.api.openapi import error_responses
from core.api.replicas import ReplicaReadMixin
from core.api.serializers import InputSerializer, ReadSerializer
from core.api.throttles import OrderPlacementThrottle, UserThrottle
from orders import selectors, services
from orders.models import Order


class OrderSerializer(ReadSerializer):
    order_id = serializers.UUIDField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    asset_id = serializers.CharField(read_only=True)
    order_type = EnumField(choices=Order.Type.choices, read_only=True)
    quantity = QuantityField(read_only=True)
    order_price = PriceField(read_only=True, allow_null=True)
    executed_price = PriceField(read_only=True, allow_null=True)
    total_amount = UsdField(read_only=True, allow_null=True)
    held_amount = UsdField(read_only=True, help_text="USD reserved while a BUY limit order rests.")
    held_quantity = QuantityField(read_only=True, help_text="Quantity reserved while a SELL limit order rests.")
    status = EnumField(choices=Order.Status.choices, read_only=True)
    failure_reason = serializers.CharField(read_only=True)
    client_order_id = serializers.CharField(read_only=True, allow_null=True)
    expires_at = TimestampField(read_only=True, allow_null=True)
    created_at = TimestampField(read_only=True)
    updated_at = TimestampField(read_only=True)
    filled_at = TimestampField(read_only=True, allow_null=True)


# One bound instance renders single orders: building a serializer deep-copies its fields
# (a third of the order endpoint's own CPU time in the profile), and rendering reads the
# fields without changing them, so sharing it is safe.
ORDER_FORMAT = OrderSerializer()


class PlaceOrderSerializer(InputSerializer):
    asset_id = serializers.RegexField(r"^[A-Za-z0-9]{1,16}\Z", help_text="Symbol, any case: BTC or btc.")
    order_type = EnumField(choices=Order.Type.choices, help_text="BUY or SELL, any case.")
    quantity = QuantityField(help_text="Units of the asset, at most the asset's quantity_decimals.")
    order_price = PriceField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Limit price in USD; omit for a market order.",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Limit orders only; default 30 days."
    )
    client_order_id = serializers.RegexField(
        r"^[\x21-\x7e]{1,64}\Z",
        required=False,
        allow_null=True,
        default=None,
        help_text="Your idempotency key: a retry with the same key and parameters gets the original answer.",
    )

    def validate_asset_id(self, value: str) -> str:
        return value.upper()


class OrderFilter(filters.FilterSet):
    asset_id = filters.CharFilter(field_name="asset_id", method="filter_asset")
    status = EnumFilter(choices=Order.Status.choices)
    order_type = EnumFilter(choices=Order.Type.choices)

    class Meta:
        model = Order
        fields = ["asset_id", "status", "order_type"]

    def filter_asset(self, queryset, name, value):
        return queryset.filter(asset_id=value.upper())


class OrderViewSet(
    ReplicaReadMixin, OwnerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Your orders, newest first. Staff may add `?username=`."""

    replica_actions = frozenset({"list"})  # one order, placing and cancelling: the primary

    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    queryset = Order.objects.none()  # for the schema; get_queryset scopes to the user
    lookup_field = "order_id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    throttle_classes = [UserThrottle, OrderPlacementThrottle]
    throttle_scope = "orders"

    def get_queryset(self):
        return selectors.get_orders_by_user(user=self.target_user()).select_related("user")

    def get_object(self):
        order = selectors.get_order_for_user(user=self.request.user, order_id=self.kwargs["order_id"])
        if order is None:
            raise exceptions.NotFound("No such order.")
        return order

    @extend_schema(
        request=PlaceOrderSerializer,
        responses={201: OrderSerializer, 200: OrderSerializer, **error_responses(409, 422, 503)},
        examples=[
            OpenApiExample(
                "Market buy",
                value={"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01", "client_order_id": "buy-001"},
                request_only=True,
            ),
            OpenApiExample(
                "Limit buy below the market",
                value={"asset_id": "ETH", "order_type": "BUY", "quantity": "0.5", "order_price": "100.00"},
                request_only=True,
            ),
            OpenApiExample(
                "Market sell", value={"asset_id": "BTC", "order_type": "SELL", "quantity": "0.001"}, request_only=True
            ),
        ],
    )
    def create(self, request):
        """Place an order. A market order fills at once; a limit order fills at once when the
        market is at or better than its price, and otherwise rests (PENDING) with a hold."""
        data = PlaceOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        placed = services.place_order(user=request.user, **data.validated_data)
        return Response(
            ORDER_FORMAT.to_representation(placed.order),
            status=status.HTTP_201_CREATED if placed.created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={200: OrderSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request, order_id=None):
        """Cancel a PENDING order and release its hold; 409 if it is no longer pending."""
        order = services.cancel_order(order=self.get_object())
        return Response(ORDER_FORMAT.to_representation(order))
