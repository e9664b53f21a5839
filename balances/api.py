"""Accounts over HTTP: registration and tokens, the USD balance and its movements, holdings,
the two ledgers and the portfolio. Views parse, call one service or selector, and render."""

from collections.abc import Callable

from django.contrib.auth import authenticate, get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, generics, mixins, serializers, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadOnlyForApiKeys
from accounts.services import issue_token
from balances import selectors, services
from balances.models import AssetTransaction, CashTransaction
from core.api.fields import EnumField, PercentField, PriceField, QuantityField, TimestampField, UsdField
from core.api.filters import EnumFilter
from core.api.openapi import error_responses
from core.api.permissions import OwnerScopedMixin
from core.api.replicas import ReplicaReadMixin
from core.api.serializers import InputSerializer, ReadSerializer
from core.api.throttles import ScopedThrottle, check_login_attempt

# --- Serializers --------------------------------------------------------------------


class RegisterSerializer(InputSerializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True, default="")

    def validate(self, attrs):
        user = get_user_model()(username=attrs["username"], email=attrs.get("email", ""))
        try:
            password_validation.validate_password(attrs["password"], user)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"password": list(error.messages)})
        return attrs


class TokenRequestSerializer(InputSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


class UsdBalanceSerializer(ReadSerializer):
    currency = serializers.CharField(help_text="Always USD.")
    current_balance = UsdField()
    held = UsdField(help_text="Reserved by resting BUY orders.")
    available = UsdField(help_text="current_balance - held: what orders and withdrawals may use.")
    updated_at = TimestampField()


class CashTransactionSerializer(ReadSerializer):
    id = serializers.IntegerField()
    transaction_type = EnumField(choices=CashTransaction.Type.choices)
    amount = UsdField(help_text="Signed: negative for money out.")
    balance_after = UsdField()
    order_id = serializers.UUIDField(allow_null=True)
    client_reference = serializers.CharField(allow_null=True)
    note = serializers.CharField()
    created_at = TimestampField()


class CashMovementRequestSerializer(InputSerializer):
    amount = UsdField(help_text='USD in whole cents, e.g. "250.00".', style={"placeholder": "250.00"})
    client_reference = serializers.RegexField(
        r"^[\x21-\x7e]{1,64}\Z",
        required=False,
        allow_null=True,
        default=None,
        help_text="Your idempotency key: a retry with the same key and amount gets the original answer.",
        style={"placeholder": "optional, e.g. a fresh UUID"},
    )


class CashMovementSerializer(ReadSerializer):
    transaction = CashTransactionSerializer()
    balance = UsdBalanceSerializer()


class AssetTransactionSerializer(ReadSerializer):
    id = serializers.IntegerField()
    asset_id = serializers.CharField()
    transaction_type = EnumField(choices=AssetTransaction.Type.choices)
    quantity = QuantityField(help_text="Signed for adjustments; positive for BUY and SELL.")
    price_per_unit = PriceField(allow_null=True)
    total_amount = UsdField(allow_null=True)
    realized_pnl = UsdField(allow_null=True)
    order_id = serializers.UUIDField(allow_null=True)
    status = EnumField(choices=AssetTransaction.Status.choices)
    price_source = serializers.CharField()
    note = serializers.CharField()
    created_at = TimestampField()


class HoldingSerializer(ReadSerializer):
    """A holding valued at the current price (a ``selectors.HoldingValue``)."""

    asset_id = serializers.CharField(source="holding.asset_id")
    asset_name = serializers.CharField(source="holding.asset.name")
    quantity = QuantityField(source="holding.quantity")
    held_quantity = QuantityField(source="holding.held_quantity")
    available_quantity = QuantityField(source="holding.available_quantity")
    average_purchase_price = PriceField(source="holding.average_purchase_price")
    total_bought = QuantityField(source="holding.total_bought")
    total_sold = QuantityField(source="holding.total_sold")
    current_price = PriceField(allow_null=True)
    market_value = UsdField(allow_null=True)
    cost_basis = UsdField(allow_null=True)
    unrealized_pnl = UsdField(allow_null=True)
    unrealized_pnl_percent = PercentField(allow_null=True)
    price_source = serializers.CharField(allow_null=True)
    price_as_of = TimestampField(allow_null=True)
    price_stale = serializers.BooleanField()
    last_transaction_at = TimestampField(allow_null=True, source="holding.last_transaction_at")


class PortfolioSerializer(ReadSerializer):
    username = serializers.CharField()
    usd_balance = UsdBalanceSerializer()
    asset_balances = HoldingSerializer(many=True)
    total_asset_value = UsdField()
    total_cost_basis = UsdField()
    total_unrealized_pnl = UsdField()
    total_portfolio_value = UsdField()
    asset_count = serializers.IntegerField()
    price_source = serializers.CharField(allow_null=True)
    prices_as_of = TimestampField(allow_null=True)
    price_stale = serializers.BooleanField()


# --- Auth ---------------------------------------------------------------------------


class Anonymous:
    authentication_classes: list = []
    permission_classes = [AllowAny]


TokenSerializer = inline_serializer("Token", {"username": serializers.CharField(), "token": serializers.CharField()})


class RegisterView(Anonymous, APIView):
    """Create an account (funded with INITIAL_USD_BALANCE) and return its API token.
    THROTTLE_REGISTER_RATE per client address: each account is funded."""

    throttle_classes = [ScopedThrottle]
    throttle_scope = "register"

    @extend_schema(
        request=RegisterSerializer,
        responses={201: TokenSerializer},
        examples=[
            OpenApiExample(
                "New account", value={"username": "dana", "password": "a-long-passphrase-42"}, request_only=True
            )
        ],
    )
    def post(self, request):
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = services.register_user(**data.validated_data)
        return Response({"username": user.username, "token": token.key}, status=status.HTTP_201_CREATED)


class TokenView(Anonymous, APIView):
    """Exchange a username and password for the user's API token. It stays the same until
    the password changes or `auth/logout/` revokes it. Throttled per client address
    (THROTTLE_AUTH_RATE) and per username (THROTTLE_LOGIN_USERNAME_RATE), with the admin's
    and the browsable API's logins."""

    throttle_classes: list = []  # counted per username too, once the body is read

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, **error_responses(401, 429)},
        examples=[
            OpenApiExample("Log in", value={"username": "dana", "password": "a-long-passphrase-42"}, request_only=True)
        ],
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wait = check_login_attempt(request, data.validated_data["username"])
        if wait is not None:
            raise exceptions.Throttled(wait, "Too many login attempts.")
        user = authenticate(request, **data.validated_data)
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid username or password.")
        token = issue_token(user=user)
        return Response({"username": user.username, "token": token.key})


# --- Balance ------------------------------------------------------------------------


class BalanceView(OwnerScopedMixin, APIView):
    """The USD balance: current, held by open BUY orders, and available."""

    @extend_schema(responses=UsdBalanceSerializer)
    def get(self, request):
        return Response(UsdBalanceSerializer(selectors.get_usd_balance(user=self.target_user())).data)


class _CashMovementView(generics.GenericAPIView):
    # A GenericAPIView with its serializer so that the browsable API shows a form (and
    # OPTIONS describes the fields), not only a raw box.
    permission_classes = [ReadOnlyForApiKeys]
    refused_to_api_keys = "deposit or withdraw cash"
    serializer_class = CashMovementRequestSerializer
    pagination_class = None
    filter_backends: list = []
    service = None

    @extend_schema(
        request=CashMovementRequestSerializer, responses={201: CashMovementSerializer, 200: CashMovementSerializer}
    )
    def post(self, request):
        data = CashMovementRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        movement = type(self).service(user=request.user, **data.validated_data)
        body = CashMovementSerializer(movement).data
        return Response(body, status=status.HTTP_201_CREATED if movement.created else status.HTTP_200_OK)


def _cash_movement_schema(*domain_errors: int, example: dict):
    return extend_schema_view(
        post=extend_schema(
            responses={201: CashMovementSerializer, 200: CashMovementSerializer, **error_responses(*domain_errors)},
            examples=[
                OpenApiExample(
                    "An amount (add a fresh client_reference to make retries safe)", value=example, request_only=True
                )
            ],
        )
    )


@_cash_movement_schema(409, example={"amount": "500.00"})
class DepositView(_CashMovementView):
    """Add USD. A repeated client_reference with the same amount returns the original (200).
    Needs your token or a session, never an API key."""

    service = staticmethod(services.deposit)


@_cash_movement_schema(409, 422, example={"amount": "25.00"})
class WithdrawView(_CashMovementView):
    """Take out USD, never more than available. Needs your token or a session, never an API key."""

    service = staticmethod(services.withdraw)


# --- Ledgers and holdings -----------------------------------------------------------


class CashTransactionFilter(filters.FilterSet):
    transaction_type = EnumFilter(choices=CashTransaction.Type.choices)

    class Meta:
        model = CashTransaction
        fields = ["transaction_type"]


class AssetTransactionFilter(filters.FilterSet):
    asset_id = filters.CharFilter(method="filter_asset")
    transaction_type = EnumFilter(choices=AssetTransaction.Type.choices)

    class Meta:
        model = AssetTransaction
        fields = ["asset_id", "transaction_type"]

    def filter_asset(self, queryset, name, value):
        return queryset.filter(asset_id=value.upper())


class _LedgerViewSet(ReplicaReadMixin, OwnerScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A ledger's rows for the user (or, for staff, ``?username=``), as ``selector`` orders them.
    ``queryset`` is there for the schema only."""

    selector: Callable[..., QuerySet]

    def get_queryset(self):
        return self.selector(user=self.target_user())


class CashTransactionViewSet(_LedgerViewSet):
    """The USD ledger, newest first. `?transaction_type=DEPOSIT|WITHDRAWAL|BUY|SELL|ADJUSTMENT`."""

    serializer_class = CashTransactionSerializer
    queryset = CashTransaction.objects.none()
    filterset_class = CashTransactionFilter
    selector = staticmethod(selectors.get_cash_transactions)


class AssetTransactionViewSet(_LedgerViewSet):
    """Asset transactions, newest first. `?asset_id=BTC`, `?transaction_type=BUY|SELL|ADJUSTMENT`."""

    serializer_class = AssetTransactionSerializer
    queryset = AssetTransaction.objects.none()
    filterset_class = AssetTransactionFilter
    selector = staticmethod(selectors.get_asset_transactions)


class AssetBalanceViewSet(OwnerScopedMixin, viewsets.ViewSet):
    """Holdings valued at current prices, with cost basis and unrealized P&L."""

    lookup_field = "asset_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(responses=HoldingSerializer(many=True))
    def list(self, request):
        holdings = selectors.value_holdings(selectors.get_holdings(user=self.target_user()))
        return Response(HoldingSerializer(holdings, many=True).data)

    @extend_schema(responses=HoldingSerializer)
    def retrieve(self, request, asset_id: str):
        holdings = selectors.get_holdings(user=self.target_user(), asset_id=asset_id.upper())
        if not holdings:
            raise exceptions.NotFound(f"No holding of {asset_id}.")
        return Response(HoldingSerializer(selectors.value_holdings(holdings)[0]).data)


class PortfolioView(OwnerScopedMixin, generics.GenericAPIView):
    """Cash and holdings valued at current market prices, with totals."""

    serializer_class = PortfolioSerializer

    def get(self, request):
        return Response(PortfolioSerializer(selectors.calculate_portfolio_value(user=self.target_user())).data)
