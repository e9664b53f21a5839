"""The account's past over HTTP (SPEC section 11): the activity feed and portfolio history.
Views parse the query string, call one selector of ``balances.history``, render."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.market_api import AssetIdsField, TimeframeField, iso, parse_query, plain_decimal
from balances.history import Activity, ActivityType, Period, get_activities, get_portfolio_history
from core.api.errors import OwnerScopedMixin
from core.api.openapi import error_responses

MAX_PAGE_SIZE = 500


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else plain_decimal(value)


# --- Activities ----------------------------------------------------------------------------


class ActivityTypesField(serializers.CharField):
    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        names = [part.strip().upper() for part in text.split(",") if part.strip()]
        unknown = [name for name in names if name not in ActivityType.__members__]
        if unknown or not names:
            choices = ", ".join(ActivityType)
            raise serializers.ValidationError(f"Activity types are one or a comma-separated list of {choices}.")
        return [ActivityType(name) for name in dict.fromkeys(names)]


class ActivitiesQuerySerializer(serializers.Serializer):
    activity_type = ActivityTypesField(
        required=False,
        max_length=200,
        help_text="FILL, DEPOSIT, WITHDRAWAL, CASH_ADJUSTMENT, ASSET_ADJUSTMENT; one or a comma-separated list.",
    )
    asset_id = AssetIdsField(
        required=False, max_length=2000, help_text="Only activities of these assets (one or a comma-separated list)."
    )
    after = serializers.DateTimeField(required=False, help_text="Only activities after this instant (exclusive).")
    until = serializers.DateTimeField(required=False, help_text="Only activities before this instant (exclusive).")
    direction = serializers.ChoiceField(choices=["desc", "asc"], default="desc", help_text="desc: newest first.")
    page_size = serializers.IntegerField(required=False, default=50, min_value=1, max_value=MAX_PAGE_SIZE)
    page_token = serializers.CharField(
        required=False, max_length=64, help_text="The last activity_id of the previous page (the next link has it)."
    )

    def validate(self, attrs):
        if "after" in attrs and "until" in attrs and attrs["after"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["until must be after after."]})
        return attrs


class ActivitySerializer(serializers.Serializer):
    """For the schema; rows are rendered by ``_activity``."""

    activity_id = serializers.CharField(help_text="Unique; sorts like the feed. Pass as page_token to continue.")
    activity_type = serializers.ChoiceField(choices=[t.value for t in ActivityType])
    created_at = serializers.DateTimeField()
    asset_id = serializers.CharField(allow_null=True)
    side = serializers.ChoiceField(choices=["BUY", "SELL"], allow_null=True)
    quantity = serializers.CharField(allow_null=True, help_text="Positive for fills; signed for adjustments.")
    price = serializers.CharField(allow_null=True, help_text="Fill price per unit.")
    net_amount = serializers.CharField(allow_null=True, help_text="USD moved: negative out of the balance.")
    realized_pnl = serializers.CharField(allow_null=True)
    order_id = serializers.UUIDField(allow_null=True)
    client_reference = serializers.CharField(allow_null=True)
    note = serializers.CharField()
    balance_after = serializers.CharField(allow_null=True, help_text="USD balance after a cash movement.")


def _activity(activity: Activity) -> dict:
    return {
        "activity_id": activity.activity_id,
        "activity_type": activity.activity_type.value,
        "created_at": iso(activity.created_at),
        "asset_id": activity.asset_id,
        "side": activity.side,
        "quantity": _plain(activity.quantity),
        "price": _plain(activity.price),
        "net_amount": _usd(activity.net_amount),
        "realized_pnl": _usd(activity.realized_pnl),
        "order_id": activity.order_id,
        "client_reference": activity.client_reference,
        "note": activity.note,
        "balance_after": _usd(activity.balance_after),
    }


ActivitiesPage = inline_serializer(
    "ActivitiesPage", {"next": serializers.URLField(allow_null=True), "results": ActivitySerializer(many=True)}
)

_FILL_EXAMPLE = {
    "activity_id": "20261127175205123456::A812",
    "activity_type": "FILL",
    "created_at": "2026-11-27T17:52:05.123456Z",
    "asset_id": "BTC",
    "side": "BUY",
    "quantity": "0.01",
    "price": "63389.3",
    "net_amount": "-633.90",
    "realized_pnl": None,
    "order_id": "5b0e9f54-3d6c-4d0e-9b7a-2f1c8a1d9e01",
    "client_reference": None,
    "note": "",
    "balance_after": None,
}
_DEPOSIT_EXAMPLE = {
    "activity_id": "20261127174801000000::C77",
    "activity_type": "DEPOSIT",
    "created_at": "2026-11-27T17:48:01Z",
    "asset_id": None,
    "side": None,
    "quantity": None,
    "price": None,
    "net_amount": "500.00",
    "realized_pnl": None,
    "order_id": None,
    "client_reference": "dep-001",
    "note": "",
    "balance_after": "10500.00",
}


class ActivitiesView(OwnerScopedMixin, APIView):
    """One feed of the account's fills and cash movements (both ledgers), newest first.
    Cursor-paginated: follow ``next``."""

    @extend_schema(
        parameters=[ActivitiesQuerySerializer],
        responses={200: ActivitiesPage, **error_responses(400)},
        examples=[
            OpenApiExample(
                "A buy after a deposit",
                response_only=True,
                value={
                    "next": "http://127.0.0.1:8000/api/v1/activities/?page_token=20261127174801000000%3A%3AC77",
                    "results": [_FILL_EXAMPLE, _DEPOSIT_EXAMPLE],
                },
            )
        ],
    )
    def get(self, request):
        query = parse_query(ActivitiesQuerySerializer, request)
        page_size = query["page_size"]
        activities = get_activities(
            user=self.target_user(),
            activity_types=query.get("activity_type"),
            asset_ids=query.get("asset_id"),
            after=query.get("after"),
            until=query.get("until"),
            page_token=query.get("page_token"),
            page_size=page_size + 1,
            newest_first=query["direction"] == "desc",
        )
        more = len(activities) > page_size
        activities = activities[:page_size]
        next_url = None
        if more:
            params = request.query_params.copy()
            params["page_token"] = activities[-1].activity_id
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"next": next_url, "results": [_activity(a) for a in activities]})


# --- Portfolio history -----------------------------------------------------------------


class PeriodField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=[p.value for p in Period], **kwargs)

    def to_internal_value(self, data):
        return Period(super().to_internal_value(data))


class HistoryQuerySerializer(serializers.Serializer):
    period = PeriodField(required=False, help_text="1D, 1W, 1M (30 days), 3M, 1A (365 days) or all. Default 1M.")
    timeframe = TimeframeField(
        required=False, help_text="1Min, 5Min, 15Min, 1H or 1D; default 1Min for 1D, 15Min for 1W, else 1D."
    )
    date_end = serializers.DateTimeField(required=False, help_text="The history ends here (default now).")


PortfolioHistoryResponse = inline_serializer(
    "PortfolioHistory",
    {
        "timestamp": serializers.ListField(child=serializers.DateTimeField(), help_text="Each bucket's start."),
        "equity": serializers.ListField(child=serializers.CharField(), help_text="USD value at the bucket's close."),
        "profit_loss": serializers.ListField(
            child=serializers.CharField(), help_text="equity - base_value - net cash moved in since the start."
        ),
        "profit_loss_pct": serializers.ListField(
            child=serializers.CharField(allow_null=True), help_text="profit_loss / (base_value + net cash in), %."
        ),
        "cash_flow": serializers.ListField(
            child=serializers.CharField(), help_text="Net deposits, withdrawals and cash adjustments since the start."
        ),
        "base_value": serializers.CharField(help_text="USD value when the first bucket opens."),
        "timeframe": serializers.CharField(),
        "period": serializers.CharField(),
    },
)


class PortfolioHistoryView(OwnerScopedMixin, APIView):
    """The portfolio's value over time, rebuilt from the ledgers and the recorded prices:
    at each bucket's close, cash then plus each holding then at the last recorded price."""

    @extend_schema(
        parameters=[HistoryQuerySerializer],
        responses={200: PortfolioHistoryResponse, **error_responses(400)},
        examples=[
            OpenApiExample(
                "Three days",
                response_only=True,
                value={
                    "timestamp": ["2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"],
                    "equity": ["10000.00", "10512.40", "10498.15"],
                    "profit_loss": ["0.00", "12.40", "-1.85"],
                    "profit_loss_pct": ["0.0000", "0.1181", "-0.0176"],
                    "cash_flow": ["0.00", "500.00", "500.00"],
                    "base_value": "10000.00",
                    "timeframe": "1D",
                    "period": "1W",
                },
            )
        ],
    )
    def get(self, request):
        query = parse_query(HistoryQuerySerializer, request)
        period = query.get("period", Period.MONTH_1)
        history = get_portfolio_history(
            user=self.target_user(), period=period, timeframe=query.get("timeframe"), end=query.get("date_end")
        )
        return Response(
            {
                "timestamp": [iso(t) for t in history.timestamp],
                "equity": [_usd(v) for v in history.equity],
                "profit_loss": [_usd(v) for v in history.profit_loss],
                "profit_loss_pct": [None if v is None else f"{v:.4f}" for v in history.profit_loss_pct],
                "cash_flow": [_usd(v) for v in history.cash_flow],
                "base_value": _usd(history.base_value),
                "timeframe": history.timeframe.value,
                "period": period.value,
            }
        )
