"""Accounts over HTTP: registration and tokens, the USD balance and its movements, holdings,
the two ledgers and the portfolio. Views parse, call one service or selector, and render."""

from django.contrib.auth import authenticate, get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view, inline_serializer
from rest_framework import exceptions, generics, mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from balances import selectors, services
from balances.models import AssetTransaction, CashTransaction, UsdBalance
from core.api.errors import FlatReadSerializer, OwnerScopedMixin
from core.api.openapi import error_responses
from core.api.throttles import ScopedThrottle

# --- Serializers --------------------------------------------------------------------


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        if get_user_model().objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("This username is taken.")
        return value

    def validate(self, attrs):
        user = get_user_model()(username=attrs["username"], email=attrs.get("email", ""))
        try:
            password_validation.validate_password(attrs["password"], user)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"password": list(error.messages)})
        return attrs


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


class UsdBalanceSerializer(serializers.ModelSerializer):
    currency = serializers.SerializerMethodField()
    available = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True)

    class Meta:
        model = UsdBalance
        fields = ["currency", "current_balance", "held", "available", "updated_at"]

    def get_currency(self, balance) -> str:
        return "USD"


class CashTransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = CashTransaction
        fields = [
            "id",
            "transaction_type",
            "amount",
            "balance_after",
            "order_id",
            "client_reference",
            "note",
            "created_at",
        ]


class CashMovementRequestSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=20, decimal_places=2, min_value=0)
    client_reference = serializers.RegexField(r"^[\x21-\x7e]{1,64}\Z", required=False, allow_null=True, default=None)


class CashMovementSerializer(serializers.Serializer):
    transaction = CashTransactionSerializer()
    balance = UsdBalanceSerializer()


class AssetTransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AssetTransaction
        fields = [
            "id",
            "asset_id",
            "transaction_type",
            "quantity",
            "price_per_unit",
            "total_amount",
            "realized_pnl",
            "order_id",
            "status",
            "price_source",
            "note",
            "created_at",
        ]


def _money(**kwargs):
    return serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True, **kwargs)


class HoldingSerializer(FlatReadSerializer):
    """A holding valued at the current price (a ``selectors.HoldingValue``)."""

    asset_id = serializers.CharField(source="holding.asset_id")
    asset_name = serializers.CharField(source="holding.asset.name")
    quantity = serializers.DecimalField(max_digits=38, decimal_places=18, source="holding.quantity")
    held_quantity = serializers.DecimalField(max_digits=38, decimal_places=18, source="holding.held_quantity")
    available_quantity = serializers.DecimalField(max_digits=38, decimal_places=18, source="holding.available_quantity")
    average_purchase_price = serializers.DecimalField(
        max_digits=30, decimal_places=12, source="holding.average_purchase_price"
    )
    total_bought = serializers.DecimalField(max_digits=38, decimal_places=18, source="holding.total_bought")
    total_sold = serializers.DecimalField(max_digits=38, decimal_places=18, source="holding.total_sold")
    current_price = serializers.DecimalField(max_digits=30, decimal_places=12, allow_null=True)
    market_value = _money()
    cost_basis = _money()
    unrealized_pnl = _money()
    unrealized_pnl_percent = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    price_source = serializers.CharField(allow_null=True)
    price_as_of = serializers.DateTimeField(allow_null=True)
    price_stale = serializers.BooleanField()
    last_transaction_at = serializers.DateTimeField(allow_null=True, source="holding.last_transaction_at")


class PortfolioSerializer(serializers.Serializer):
    username = serializers.CharField()
    usd_balance = UsdBalanceSerializer()
    asset_balances = HoldingSerializer(many=True)
    total_asset_value = _money()
    total_cost_basis = _money()
    total_unrealized_pnl = _money()
    total_portfolio_value = _money()
    asset_count = serializers.IntegerField()
    price_source = serializers.CharField(allow_null=True)
    prices_as_of = serializers.DateTimeField(allow_null=True)
    price_stale = serializers.BooleanField()


# --- Auth ---------------------------------------------------------------------------


class AuthThrottled:
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "auth"


TokenSerializer = inline_serializer("Token", {"username": serializers.CharField(), "token": serializers.CharField()})


class RegisterView(AuthThrottled, APIView):
    """Create an account (funded with INITIAL_USD_BALANCE) and return its API token."""

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


class TokenView(AuthThrottled, APIView):
    """Exchange a username and password for the user's API token."""

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, **error_responses(401)},
        examples=[
            OpenApiExample("Log in", value={"username": "dana", "password": "a-long-passphrase-42"}, request_only=True)
        ],
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid username or password.")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"username": user.username, "token": token.key})


# --- Balance ------------------------------------------------------------------------


class BalanceView(OwnerScopedMixin, APIView):
    """The USD balance: current, held by open BUY orders, and available."""

    @extend_schema(responses=UsdBalanceSerializer)
    def get(self, request):
        return Response(UsdBalanceSerializer(selectors.get_usd_balance(user=self.target_user())).data)


class _CashMovementView(APIView):
    service = None

    @extend_schema(
        request=CashMovementRequestSerializer, responses={201: CashMovementSerializer, 200: CashMovementSerializer}
    )
    def post(self, request):
        data = CashMovementRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        movement = type(self).service(user=request.user, **data.validated_data)
        body = CashMovementSerializer({"transaction": movement.transaction, "balance": movement.balance}).data
        return Response(body, status=status.HTTP_201_CREATED if movement.created else status.HTTP_200_OK)


def _cash_movement_schema(*domain_errors: int, example: dict):
    return extend_schema_view(
        post=extend_schema(
            responses={201: CashMovementSerializer, 200: CashMovementSerializer, **error_responses(*domain_errors)},
            examples=[OpenApiExample("Amount with an idempotency key", value=example, request_only=True)],
        )
    )


@_cash_movement_schema(409, example={"amount": "500.00", "client_reference": "dep-001"})
class DepositView(_CashMovementView):
    """Add USD. A repeated client_reference with the same amount returns the original (200)."""

    service = staticmethod(services.deposit)


@_cash_movement_schema(409, 422, example={"amount": "25.00", "client_reference": "wd-001"})
class WithdrawView(_CashMovementView):
    """Take out USD, never more than available."""

    service = staticmethod(services.withdraw)


# --- Ledgers and holdings -----------------------------------------------------------


class CashTransactionViewSet(OwnerScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The USD ledger, newest first. `?transaction_type=DEPOSIT|WITHDRAWAL|BUY|SELL|ADJUSTMENT`."""

    serializer_class = CashTransactionSerializer
    queryset = CashTransaction.objects.none()  # for the schema; get_queryset scopes to the user
    filterset_fields = ["transaction_type"]

    def get_queryset(self):
        return selectors.get_cash_transactions(user=self.target_user())


class AssetTransactionViewSet(OwnerScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Asset transactions, newest first. `?asset_id=BTC`, `?transaction_type=BUY|SELL|ADJUSTMENT`."""

    serializer_class = AssetTransactionSerializer
    queryset = AssetTransaction.objects.none()  # for the schema; get_queryset scopes to the user
    filterset_fields = ["asset_id", "transaction_type"]

    def get_queryset(self):
        return selectors.get_asset_transactions(user=self.target_user())


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
