"""The account as a whole over HTTP: starting a paper account over (docs/DESIGN.md, "Reset and
exports"). Its own module: the reset sees orders and balances, as ``orders.services`` does."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from accounts.permissions import ReadOnlyForApiKeys
from core.api.fields import QuantityField, TimestampField, UsdField
from core.api.openapi import error_responses
from core.api.serializers import InputSerializer, ReadSerializer
from core.api.throttles import UserAndOrderThrottle
from orders import services


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
