"""The account as a whole over HTTP: starting a paper account over (docs/DESIGN.md, "Reset and
exports") and how its orders fill (docs/DESIGN.md, "Fill model"). Its own module: the reset
sees orders and balances, as ``orders.services`` does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from accounts.permissions import ReadOnlyForApiKeys
from core.api.fields import (
    EnumField,
    QuantityField,
    StrictDecimalField,
    StrictIntegerField,
    TimestampField,
    UsdField,
)
from core.api.openapi import error_responses
from core.api.serializers import InputSerializer, ReadSerializer
from core.api.throttles import UserAndOrderThrottle
from core.money import Precision
from orders import services
from orders.selectors import get_account_fill_model, params_of


class ResetRequestSerializer(InputSerializer):
    cash = UsdField(
        required=False,
        min_value=Decimal("0"),
        help_text="USD the account starts over with, in whole cents; default INITIAL_USD_BALANCE (10000.00).",
        style={"placeholder": "10000.00"},
    )
    client_reference = serializers.RegexField(
        r"^[\x21-\x7e]{1,64}\Z",
        required=False,
        allow_null=True,
        default=None,
        help_text="Your idempotency key: a retry with the same key and cash gets the first reset's answer and moves "
        "nothing.",
        style={"placeholder": "optional, e.g. a fresh UUID"},
    )


class RemovedPositionSerializer(ReadSerializer):
    """One holding a reset took out, as the reset stored it: ``{"asset_id", "quantity"}``."""

    asset_id = serializers.CharField()
    quantity = QuantityField(help_text="What the holding held, taken out by a RESET ledger row (no sale).")

    def to_representation(self, position: dict) -> dict:
        return {
            "asset_id": position["asset_id"],
            "quantity": _QUANTITY.to_representation(Decimal(position["quantity"])),
        }


_QUANTITY = QuantityField()


class AccountResetSerializer(ReadSerializer):
    """A ``balances.models.AccountReset`` as it was answered."""

    reset_id = serializers.IntegerField(source="id")
    created_at = TimestampField(help_text="The instant the account's history starts over from.")
    cash = UsdField(help_text="The USD balance the account starts over with.")
    cash_change = UsdField(source="cash_transaction.amount", help_text="cash - the balance before (its RESET row).")
    cancelled_orders = serializers.ListField(
        child=serializers.CharField(), help_text="The order_id of each open order cancelled, oldest first."
    )
    positions = RemovedPositionSerializer(many=True, help_text="Each holding taken out, by asset.")
    client_reference = serializers.CharField(allow_null=True)
    by_back_office = serializers.BooleanField(help_text="True when back-office staff reset the account.")


_EXAMPLE = {
    "reset_id": 7,
    "created_at": "2026-12-07T10:15:02.123456Z",
    "cash": "10000.00",
    "cash_change": "-412.35",
    "cancelled_orders": ["5b0e9f54-3d6c-4d0e-9b7a-2f1c8a1d9e01"],
    "positions": [{"asset_id": "BTC", "quantity": "0.01"}],
    "client_reference": "reset-2026-12-07",
    "by_back_office": False,
}


class AccountResetView(generics.GenericAPIView):
    """Start your paper account over: every open order cancelled (holds released), every
    holding taken out (no sale, no P&L), cash set to `cash` (default INITIAL_USD_BALANCE);
    portfolio history starts over from here. Your API keys, tokens and settings stay. A
    repeated `client_reference` with the same `cash` answers the first reset (200) and moves
    nothing; with another `cash`, 409. Needs your token or a session, never an API key."""

    permission_classes = [ReadOnlyForApiKeys]
    refused_to_api_keys = "reset the account"
    throttle_classes = [UserAndOrderThrottle]  # counted like placing an order
    throttle_scope = "orders"
    serializer_class = ResetRequestSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        request=ResetRequestSerializer,
        responses={201: AccountResetSerializer, 200: AccountResetSerializer, **error_responses(403, 409)},
        examples=[
            OpenApiExample("Start over with 10,000.00", value={"client_reference": "reset-1"}, request_only=True),
            OpenApiExample("Start over with 2,500.00", value={"cash": "2500.00"}, request_only=True),
            OpenApiExample("The reset", value=_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request):
        data = ResetRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.reset_account(user=request.user, **data.validated_data)
        return Response(
            AccountResetSerializer(result.reset).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


# --- The account's fill model (docs/DESIGN.md, "Fill model") ----------------------------

_BPS = Precision(max_digits=6, decimals=2)
# Two integer digits, though a share is at most 1 (max_value says so): the schema's pattern of
# every decimal takes "10", and the answer to 10 is a 400 naming the bound, not the pattern.
_SHARE = Precision(max_digits=6, decimals=4)


def _bps(**kwargs) -> StrictDecimalField:
    return StrictDecimalField(_BPS, trim=True, **kwargs)


def _share(**kwargs) -> StrictDecimalField:
    return StrictDecimalField(_SHARE, trim=True, **kwargs)


class FillModelSerializer(ReadSerializer):
    """The model an account's next orders fill under."""

    profile = serializers.CharField(help_text="ideal, realistic, or custom (any other set of the parameters).")
    spread_bps = _bps(help_text="Basis points between bid and ask: bid = mid x (1 - s/2), ask = mid x (1 + s/2).")
    slippage = serializers.CharField(help_text="none, or volume_share (LEAN's VolumeShareSlippageModel).")
    volume_limit = _share(help_text="volume_share: the largest share of a minute's volume slippage counts.")
    price_impact = _share(help_text="volume_share: slip = min(qty / minute volume, volume_limit)^2 x price_impact.")
    fill_participation = _share(
        allow_null=True,
        help_text="The largest share of a minute's volume one resting order takes per minute; null: whole fills.",
    )
    maker_fee_bps = _bps(help_text="Fee of an order that rested before it filled (crypto fee tier 1: 15).")
    taker_fee_bps = _bps(help_text="Fee of an order filled on arrival (crypto fee tier 1: 25).")
    seed = serializers.IntegerField(help_text="The same seed, prices and orders give the same fills.")
    is_default = serializers.BooleanField(help_text="True while the account uses the deployment's model.")
    updated_at = TimestampField(allow_null=True, help_text="When the account's own model was last set.")
    by_back_office = serializers.BooleanField(help_text="True when back-office staff set it last.")


class FillModelChangeSerializer(InputSerializer):
    profile = EnumField(choices=["ideal", "realistic"], required=False, help_text="Start from this profile.")
    spread_bps = _bps(required=False, min_value=Decimal(0), max_value=Decimal(1000))
    slippage = EnumField(choices=["none", "volume_share"], required=False)
    volume_limit = _share(required=False, min_value=Decimal("0.0001"), max_value=Decimal(1))
    price_impact = _share(required=False, min_value=Decimal(0), max_value=Decimal(1))
    fill_participation = _share(required=False, allow_null=True, min_value=Decimal("0.0001"), max_value=Decimal(1))
    maker_fee_bps = _bps(required=False, min_value=Decimal(0), max_value=Decimal(1000))
    taker_fee_bps = _bps(required=False, min_value=Decimal(0), max_value=Decimal(1000))
    seed = StrictIntegerField(required=False, min_value=0, max_value=2**31 - 1)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError({"profile": ["Give a profile or at least one parameter."]})
        return attrs


@dataclass(frozen=True)
class _FillModelAnswer:
    profile: str
    spread_bps: Decimal
    slippage: str
    volume_limit: Decimal
    price_impact: Decimal
    fill_participation: Decimal | None
    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    seed: int
    is_default: bool
    updated_at: datetime | None
    by_back_office: bool


def _answer(params, row) -> dict:
    return FillModelSerializer(
        _FillModelAnswer(
            profile=params.profile,
            **params.as_dict(),
            is_default=row is None,
            updated_at=row.updated_at if row is not None else None,
            by_back_office=row is not None and row.actor_id is not None,
        )
    ).data


class FillModelView(generics.GenericAPIView):
    """How your orders fill: `ideal` (the last price, whole fills, no fees), `realistic`
    (a spread, size-aware slippage, resting orders filled in parts by their share of each
    minute's volume, maker 15 / taker 25 bps fees), or each parameter on its own. PATCH a
    `profile` to start from it, and any parameter to set it; it applies to orders placed,
    and resting orders filled, afterwards. An API key may read it, not change it."""

    permission_classes = [ReadOnlyForApiKeys]
    refused_to_api_keys = "change the fill model"
    serializer_class = FillModelChangeSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(request=None, responses={200: FillModelSerializer})
    def get(self, request):
        params, row = get_account_fill_model(user_id=request.user.pk)
        return Response(_answer(params, row))

    @extend_schema(
        request=FillModelChangeSerializer,
        responses={200: FillModelSerializer, **error_responses(403)},
        examples=[
            OpenApiExample("Realistic fills", value={"profile": "realistic"}, request_only=True),
            OpenApiExample("Only a spread", value={"spread_bps": "5"}, request_only=True),
        ],
    )
    def patch(self, request):
        data = FillModelChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.set_account_fill_model(user=request.user, **data.validated_data)
        return Response(_answer(params_of(row), row))
