"""Orders over HTTP: place (market, limit, stop, stop-limit; by quantity or notional), list
with filters, show, replace, cancel one or all; and closing positions (README, "The API in short")."""

from django.db.models import Q
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api.csv_export import Chunk, CsvExportMixin, cells, csv_lines
from core.api.defaults import NewestFirstCursorPagination
from core.api.errors import DOMAIN_STATUS, error_body
from core.api.fields import EnumField, PercentField, PriceField, QuantityField, TimestampField, UsdField
from core.api.openapi import error_responses
from core.api.permissions import OwnerScopedMixin
from core.api.replicas import ReplicaReadMixin
from core.api.serializers import InputSerializer, ReadSerializer
from core.api.throttles import UserAndOrderThrottle
from orders import selectors, services
from orders.filters import OLDEST_FIRST, OrderFilter
from orders.models import PARTIALLY_FILLED, Order
from orders.selectors import OTHER_USERS_ORDER_PERMISSIONS, OrderAccess
from orders.validation import OrderChanges, OrderRequest

# What each action on one order does with it: on another user's order, staff need the
# matching back-office permission, or the order is a 404 (orders.selectors.get_order_for_user).
ORDER_ACCESS = {"cancel": OrderAccess.CANCEL, "partial_update": OrderAccess.REPLACE}


class OrderSerializer(ReadSerializer):
    order_id = serializers.UUIDField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    asset_id = serializers.CharField(read_only=True)
    order_type = EnumField(choices=Order.Type.choices, read_only=True)
    quantity = QuantityField(read_only=True)
    order_price = PriceField(read_only=True, allow_null=True)
    executed_price = PriceField(read_only=True, allow_null=True, help_text="The fill's price; its fills' average.")
    filled_quantity = QuantityField(read_only=True, help_text="What has filled so far: all of it once COMPLETED.")
    filled_avg_price = PriceField(
        source="executed_price", read_only=True, allow_null=True, help_text="The average price of its fills so far."
    )
    total_amount = UsdField(read_only=True, allow_null=True, help_text="USD of its fills so far.")
    held_amount = UsdField(
        read_only=True,
        help_text=(
            "USD reserved for what is left to fill while a BUY limit, stop or stop-limit order rests; "
            "0 for a SELL (its quantity is held instead) and once the order ends."
        ),
    )
    held_quantity = QuantityField(
        read_only=True, help_text="Quantity reserved while a SELL limit, stop or stop-limit order rests."
    )
    kind = EnumField(choices=Order.Kind.choices, read_only=True, help_text="From the prices given.")
    stop_price = PriceField(read_only=True, allow_null=True)
    triggered_at = TimestampField(read_only=True, allow_null=True, help_text="When the market reached the stop.")
    notional = UsdField(read_only=True, allow_null=True, help_text="USD asked for instead of a quantity.")
    time_in_force = EnumField(choices=Order.TimeInForce.choices, read_only=True)
    replaces = serializers.UUIDField(source="replaces_id", read_only=True, allow_null=True)
    replaced_by = serializers.UUIDField(source="replaced_by_id", read_only=True, allow_null=True)
    by_back_office = serializers.BooleanField(
        read_only=True,
        help_text="True when back-office staff cancelled or replaced this order for its owner (the staff member is on "
        "the order's back-office page).",
    )
    status = EnumField(
        source="shown_status",
        choices=[*Order.Status.choices, (PARTIALLY_FILLED, PARTIALLY_FILLED)],
        read_only=True,
        help_text="PARTIALLY_FILLED: open, part of it filled (its fills are in the ledgers and activities).",
    )
    failure_reason = serializers.CharField(read_only=True)
    client_order_id = serializers.CharField(read_only=True, allow_null=True)
    expires_at = TimestampField(read_only=True, allow_null=True)
    created_at = TimestampField(read_only=True)
    updated_at = TimestampField(read_only=True)
    filled_at = TimestampField(read_only=True, allow_null=True)


# Free text in the CSV export: made spreadsheet-safe (core.api.csv_export).
ORDER_TEXT = frozenset({"username", "client_order_id", "failure_reason"})

# One bound instance renders single orders: building a serializer deep-copies its fields
# (a third of the order endpoint's own CPU time in the profile), and rendering reads the
# fields without changing them, so sharing it is safe.
ORDER_FORMAT = OrderSerializer()


# An input a request may leave out, or send as null: the service's own default applies.
OPTIONAL = {"required": False, "allow_null": True, "default": None}


class PlaceOrderSerializer(InputSerializer):
    asset_id = serializers.RegexField(
        r"^[A-Za-z0-9]{1,16}\Z", help_text="Symbol, any case: BTC or btc.", style={"placeholder": "BTC"}
    )
    order_type = EnumField(choices=Order.Type.choices, help_text="BUY or SELL, any case.")
    quantity = QuantityField(
        **OPTIONAL,
        help_text="Units of the asset, at most the asset's quantity_decimals; or give notional.",
        style={"placeholder": "0.01"},
    )
    notional = UsdField(
        **OPTIONAL,
        help_text="Market orders: USD to spend (BUY, never exceeded) or to raise (SELL) instead of a quantity.",
        style={"placeholder": "or USD, e.g. 100.00"},
    )
    order_price = PriceField(
        **OPTIONAL,
        help_text="Limit price in USD; omit for a market or stop order.",
        style={"placeholder": "empty for a market order"},
    )
    stop_price = PriceField(
        **OPTIONAL,
        help_text="Stop price in USD: a stop order, or with order_price a stop-limit order.",
        style={"placeholder": "empty unless a stop"},
    )
    time_in_force = EnumField(
        choices=Order.TimeInForce.choices,
        default=Order.TimeInForce.GTC,
        help_text="gtc rests until filled, cancelled or expired; ioc and fok fill at once or end CANCELLED.",
    )
    expires_at = serializers.DateTimeField(**OPTIONAL, help_text="Resting (gtc) orders only; default 30 days.")
    client_order_id = serializers.RegexField(
        r"^[\x21-\x7e]{1,64}\Z",
        **OPTIONAL,
        help_text="Your idempotency key: a retry with the same key and parameters gets the original answer.",
        style={"placeholder": "optional, e.g. a fresh UUID"},
    )

    def validate_asset_id(self, value: str) -> str:
        return value.upper()


class ReplaceOrderSerializer(InputSerializer):
    quantity = QuantityField(required=False)
    order_price = PriceField(required=False)
    stop_price = PriceField(required=False)
    time_in_force = EnumField(choices=Order.TimeInForce.choices, required=False)
    client_order_id = serializers.RegexField(r"^[\x21-\x7e]{1,64}\Z", required=False)

    def to_representation(self, instance):
        """The browsable API's PATCH form, pre-filled from the order: the values it has, so
        that sending the form with one of them changed replaces just that. Never a null (a
        null is refused, so the form sent back with nulls in it was a 400), nor the order's
        client_order_id (it stays the old order's; the new one takes a new key or none)."""
        shown = super().to_representation(instance)
        return {name: value for name, value in shown.items() if value is not None and name != "client_order_id"}


class OrderCursorPagination(NewestFirstCursorPagination):
    """Newest first, or oldest first with ``?direction=asc``; orders of one instant by id, so
    that the pages and the CSV export list them in one order."""

    def get_ordering(self, request, queryset, view):
        return order_list_ordering(request)


def order_list_ordering(request) -> tuple[str, str]:
    if request.query_params.get("direction", "").lower() == OLDEST_FIRST:
        return ("created_at", "order_id")
    return ("-created_at", "-order_id")


class OrderViewSet(
    CsvExportMixin,
    ReplicaReadMixin,
    OwnerScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Your orders, newest first. Back-office staff may add `?username=`."""

    replica_actions = frozenset({"list"})  # one order, placing and cancelling: the primary
    csv_actions = frozenset({"list"})

    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    pagination_class = OrderCursorPagination
    queryset = Order.objects.none()  # for the schema; get_queryset scopes to the user
    lookup_field = "order_id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    throttle_classes = [UserAndOrderThrottle]
    throttle_scope = "orders"
    order_placing_methods = ("POST", "PATCH")  # a replace places the new order

    def get_queryset(self):
        return selectors.get_orders(user=self.target_user(), filters=self.request.query_params).select_related("user")

    def filter_queryset(self, queryset):
        # get_orders applied OrderFilter, the one filter of both APIs' order lists; the filter
        # backend stays declared for what it describes (OpenAPI, the browsable API's form).
        return queryset

    def get_serializer_class(self):
        # The browsable API's form and OPTIONS ask for the POST serializer through a cloned
        # request while the action is still "list" (or "metadata"): with OrderSerializer
        # every field was read-only and the form empty.
        method = self.request.method if self.request is not None else None
        if method == "POST" and self.action in ("list", "create", "metadata"):
            return PlaceOrderSerializer
        if method == "PATCH" and self.detail:
            return ReplaceOrderSerializer
        return OrderSerializer

    def list(self, request, *args, **kwargs):
        # ?format=csv or Accept: text/csv: every order of the filter as a CSV file (no docstring
        # here: the browsable API describes the list with the class's).
        if self.wants_csv():
            return self.export_csv()
        return super().list(request, *args, **kwargs)

    def export_csv(self):
        """Every order of the filter, in the list's order, read in keyset chunks."""
        orders = self.filter_queryset(self.get_queryset())
        ordering = order_list_ordering(self.request)
        newest_first = ordering[0].startswith("-")
        header = list(ORDER_FORMAT.fields)
        size = self.csv_chunk_rows

        def read_chunk(position) -> Chunk:
            page = orders
            if position is not None:
                at, order_id = position
                # The range bound first (created_at), which the user's index serves; then the
                # orders of that instant past the last one read.
                if newest_first:
                    page = page.filter(created_at__lte=at).filter(
                        Q(created_at__lt=at) | Q(created_at=at, order_id__lt=order_id)
                    )
                else:
                    page = page.filter(created_at__gte=at).filter(
                        Q(created_at__gt=at) | Q(created_at=at, order_id__gt=order_id)
                    )
            rows = list(page.order_by(*ordering)[: size + 1])
            more = len(rows) > size
            rows = rows[:size]
            data = csv_lines([cells(ORDER_FORMAT.to_representation(order), text=ORDER_TEXT) for order in rows])
            return Chunk(data, (rows[-1].created_at, rows[-1].order_id) if more else None)

        return self.csv_export(read_chunk, header=header, username=self.target_user().get_username(), what="orders")

    def retrieve(self, request, *args, **kwargs):
        """One of your orders, by its `order_id`: its kind, prices, time in force, status,
        hold and fill. `PATCH` replaces it and `POST .../cancel/` cancels it while it is
        PENDING. Another user's order is 404."""
        return super().retrieve(request, *args, **kwargs)

    def get_object(self):
        access = ORDER_ACCESS.get(self.action, OrderAccess.VIEW)
        order = selectors.get_order_for_user(user=self.request.user, order_id=self.kwargs["order_id"], access=access)
        if order is None:
            raise exceptions.NotFound("No such order.")
        return order

    def actor_for(self, owner_id: int):
        """The staff member acting on another user's orders, recorded on them; None for the owner."""
        return self.request.user if owner_id != self.request.user.pk else None

    @extend_schema(
        request=PlaceOrderSerializer,
        responses={201: OrderSerializer, 200: OrderSerializer, **error_responses(409, 422, 503)},
        examples=[
            OpenApiExample(
                "Market buy",
                value={"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"},
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
            OpenApiExample(
                "Buy 100 USD of BTC",
                value={"asset_id": "BTC", "order_type": "BUY", "notional": "100.00"},
                request_only=True,
            ),
            OpenApiExample(
                "Stop loss",
                value={"asset_id": "BTC", "order_type": "SELL", "quantity": "0.01", "stop_price": "45000"},
                request_only=True,
            ),
            OpenApiExample(
                "Stop-limit buy, fill or kill",
                value={
                    "asset_id": "ETH",
                    "order_type": "BUY",
                    "quantity": "0.5",
                    "stop_price": "2600",
                    "order_price": "2650",
                    "time_in_force": "fok",
                },
                request_only=True,
            ),
        ],
    )
    def create(self, request):
        """Place an order. A market order fills at once; a limit order fills at once when the
        market is at or better than its price; a stop acts when the market reaches its stop
        price. An order not filled at once rests (PENDING) with a hold, or with time_in_force
        ioc/fok ends CANCELLED."""
        data = PlaceOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        placed = services.place_order(user=request.user, request=OrderRequest(**data.validated_data))
        return Response(
            ORDER_FORMAT.to_representation(placed.order),
            status=status.HTTP_201_CREATED if placed.created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={200: OrderSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request, order_id=None):
        """Cancel a PENDING order and release its hold; 409 if it is no longer pending."""
        order = self.get_object()
        order = services.cancel_order(order=order, actor=self.actor_for(order.user_id))
        return Response(ORDER_FORMAT.to_representation(order))

    @extend_schema(
        request=ReplaceOrderSerializer,
        responses={200: OrderSerializer, **error_responses(409, 422, 503)},
        examples=[
            OpenApiExample("Move a limit", value={"order_price": "41000", "quantity": "0.02"}, request_only=True),
        ],
    )
    def partial_update(self, request, order_id=None):
        """Replace a PENDING order: the old one ends REPLACED (with `replaced_by`), the new one
        (with `replaces`) takes the fields given and keeps the others, and the hold moves to
        it. 409 if the order was filled, cancelled or replaced first."""
        data = ReplaceOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = self.get_object()
        changes = OrderChanges(**data.validated_data)
        new = services.replace_order(order=order, changes=changes, actor=self.actor_for(order.user_id))
        return Response(ORDER_FORMAT.to_representation(new))

    @extend_schema(request=None, responses={200: OrderSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="cancel-all", pagination_class=None, filter_backends=[])
    def cancel_all(self, request):
        """Cancel every PENDING order of yours and release their holds; lists them. Back-office
        staff with the cancel permission may add `?username=`."""
        user = self.target_user(permission=OTHER_USERS_ORDER_PERMISSIONS[OrderAccess.CANCEL])
        cancelled = services.cancel_all_orders(user=user, actor=self.actor_for(user.pk))
        for order in cancelled:
            order.user = user  # every one is the user's: the answer's username without a query per order
        return Response([ORDER_FORMAT.to_representation(order) for order in cancelled])


class ClosePositionSerializer(InputSerializer):
    quantity = QuantityField(required=False, help_text="Units to sell; default all that is not held.")
    percentage = PercentField(required=False, help_text="Or this share of what is not held: above 0, at most 100.")


class ClosePositionView(generics.GenericAPIView):
    """Sell a holding at market: all of its available quantity, or `quantity`, or `percentage` of it."""

    serializer_class = ClosePositionSerializer
    throttle_classes = [UserAndOrderThrottle]
    throttle_scope = "orders"

    @extend_schema(
        request=ClosePositionSerializer,
        responses={201: OrderSerializer, **error_responses(404, 422, 503)},
        examples=[OpenApiExample("Half of it", value={"percentage": "50"}, request_only=True)],
    )
    def post(self, request, asset_id: str):
        data = ClosePositionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        placed = services.close_position(user=request.user, asset_id=asset_id.upper(), **data.validated_data)
        return Response(ORDER_FORMAT.to_representation(placed.order), status=status.HTTP_201_CREATED)


class ClosedPositionSerializer(ReadSerializer):
    asset_id = serializers.CharField()
    status = serializers.IntegerField(help_text="The HTTP status closing this position alone would answer.")
    order = OrderSerializer(allow_null=True)
    error = serializers.DictField(allow_null=True, help_text="The error shape's body, when it failed.")


class CloseAllSerializer(ReadSerializer):
    cancelled = OrderSerializer(many=True)
    closed = ClosedPositionSerializer(many=True)


class CloseAllPositionsView(generics.GenericAPIView):
    """Cancel every open order, then sell every holding at market."""

    serializer_class = CloseAllSerializer
    throttle_classes = [UserAndOrderThrottle]
    throttle_scope = "orders"

    @extend_schema(request=None, responses={200: CloseAllSerializer})
    def post(self, request):
        cancelled, closed = services.close_all_positions(user=request.user, cancel_orders=True)
        return Response(
            {
                "cancelled": [ORDER_FORMAT.to_representation(order) for order in cancelled],
                "closed": [_closed_position(position) for position in closed],
            }
        )


def _closed_position(position: services.ClosedPosition) -> dict:
    order = ORDER_FORMAT.to_representation(position.order) if position.order is not None else None
    if position.error is None:
        return {"asset_id": position.asset_id, "status": 201, "order": order, "error": None}
    body = error_body(position.error.code, position.error.message, position.error.details)
    status_code = DOMAIN_STATUS.get(position.error.code, status.HTTP_400_BAD_REQUEST)
    return {"asset_id": position.asset_id, "status": status_code, "order": order, **body}
