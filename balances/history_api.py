"""The account's past over HTTP (README, "The API in short"): the activity feed and portfolio history.
Views parse the query string, call one selector of ``balances.history``, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.market_api import AssetIdsField
from assets.selectors import Timeframe
from balances.history import ActivityType, Period, get_activities, get_portfolio_history, parse_activity_id
from core.api.csv_export import Chunk, CsvExportMixin, cells, csv_lines
from core.api.fields import (
    EnumValueField,
    InstantField,
    PercentField,
    PriceField,
    QuantityField,
    StrictIntegerField,
    TimestampField,
    UsdField,
)
from core.api.openapi import error_responses
from core.api.permissions import OwnerScopedMixin
from core.api.replicas import ReplicaReadMixin
from core.api.serializers import InputSerializer, ReadSerializer, parse_query
from core.exceptions import InvalidRequest

MAX_PAGE_SIZE = 500


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


class ActivitiesQuerySerializer(InputSerializer):
    activity_type = ActivityTypesField(
        required=False,
        max_length=200,
        help_text="FILL, DEPOSIT, WITHDRAWAL, CASH_ADJUSTMENT, ASSET_ADJUSTMENT, RESET, FEE; one or a comma-separated "
        "list.",
    )
    asset_id = AssetIdsField(
        required=False, max_length=2000, help_text="Only activities of these assets (one or a comma-separated list)."
    )
    after = InstantField(required=False, help_text="Only activities after this instant (exclusive).")
    until = InstantField(required=False, help_text="Only activities before this instant (exclusive).")
    direction = serializers.ChoiceField(choices=["desc", "asc"], default="desc", help_text="desc: newest first.")
    page_size = StrictIntegerField(required=False, default=50, min_value=1, max_value=MAX_PAGE_SIZE)
    page_token = serializers.CharField(
        required=False, max_length=64, help_text="The last activity_id of the previous page (the next link has it)."
    )

    def validate_page_token(self, value: str) -> str:
        try:
            parse_activity_id(value)
        except InvalidRequest as error:
            raise serializers.ValidationError(error.message) from None
        return value

    def validate(self, attrs):
        if "after" in attrs and "until" in attrs and attrs["after"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["until must be after after."]})
        return attrs


class ActivitySerializer(ReadSerializer):
    """A ``balances.history.Activity``."""

    activity_id = serializers.CharField(help_text="Unique; sorts like the feed. Pass as page_token to continue.")
    activity_type = serializers.ChoiceField(choices=[t.value for t in ActivityType])
    created_at = TimestampField()
    asset_id = serializers.CharField(allow_null=True)
    side = serializers.ChoiceField(choices=["BUY", "SELL"], allow_null=True)
    quantity = QuantityField(allow_null=True, help_text="Positive for fills; signed for asset adjustments.")
    price = PriceField(allow_null=True, help_text="Fill price per unit.")
    net_amount = UsdField(allow_null=True, help_text="USD moved: negative out of the balance.")
    realized_pnl = UsdField(allow_null=True)
    order_id = serializers.CharField(allow_null=True, help_text="The order of a fill (a UUID).")
    client_reference = serializers.CharField(allow_null=True)
    note = serializers.CharField()
    balance_after = UsdField(allow_null=True, help_text="USD balance after a cash movement.")


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


# Free text in the CSV export: made spreadsheet-safe (core.api.csv_export).
ACTIVITY_TEXT = frozenset({"client_reference", "note"})
ACTIVITY_FORMAT = ActivitySerializer()


class ActivitiesView(CsvExportMixin, ReplicaReadMixin, OwnerScopedMixin, APIView):
    """One feed of the account's fills and cash movements (both ledgers), newest first.
    Cursor-paginated: follow ``next``. `?format=csv` (or `Accept: text/csv`): every activity
    of the filter as a CSV file."""

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
        user = self.target_user()
        page_size = query["page_size"]

        def page(page_token: str | None, size: int) -> list:
            return get_activities(
                user=user,
                activity_types=query.get("activity_type"),
                asset_ids=query.get("asset_id"),
                after=query.get("after"),
                until=query.get("until"),
                page_token=page_token,
                page_size=size,
                newest_first=query["direction"] == "desc",
            )

        if self.wants_csv():
            # Every activity from page_token on (the first, without one; the serializer checked
            # it, for once the file has begun an error can no longer be answered). page_size is
            # the JSON's.
            return self.export_csv(page, start=query.get("page_token"), username=user.get_username())
        activities = page(query.get("page_token"), page_size + 1)
        more = len(activities) > page_size
        activities = activities[:page_size]
        next_url = None
        if more:
            params = request.query_params.copy()
            params["page_token"] = activities[-1].activity_id
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"next": next_url, "results": ActivitySerializer(activities, many=True).data})

    def export_csv(self, page, *, start: str | None, username: str):
        size = self.csv_chunk_rows

        def read_chunk(page_token: str | None) -> Chunk:
            activities = page(page_token if page_token is not None else start, size + 1)
            more = len(activities) > size
            activities = activities[:size]
            data = csv_lines([cells(ACTIVITY_FORMAT.to_representation(a), text=ACTIVITY_TEXT) for a in activities])
            return Chunk(data, activities[-1].activity_id if more else None)

        return self.csv_export(read_chunk, header=list(ACTIVITY_FORMAT.fields), username=username, what="activities")


# --- Portfolio history -----------------------------------------------------------------


class HistoryQuerySerializer(InputSerializer):
    period = EnumValueField(
        Period, required=False, help_text="1D, 1W, 1M (30 days), 3M, 1A (365 days) or all. Default 1M."
    )
    timeframe = EnumValueField(
        Timeframe, required=False, help_text="1Min, 5Min, 15Min, 1H or 1D; default 1Min for 1D, 15Min for 1W, else 1D."
    )
    date_end = InstantField(required=False, help_text="The history ends here (default now).")


class PortfolioHistorySerializer(ReadSerializer):
    """A ``balances.history.PortfolioHistory``."""

    timestamp = serializers.ListField(child=TimestampField(), help_text="Each bucket's start.")
    equity = serializers.ListField(child=UsdField(), help_text="USD value at the bucket's close.")
    profit_loss = serializers.ListField(
        child=UsdField(), help_text="equity - base_value - net cash moved in since the period opened."
    )
    profit_loss_pct = serializers.ListField(
        child=PercentField(allow_null=True),
        help_text="profit_loss / (base_value + net cash moved in), in percent; null while that is not positive.",
    )
    cash_flow = serializers.ListField(
        child=UsdField(), help_text="Net deposits, withdrawals and cash adjustments since the period opened."
    )
    base_value = UsdField(help_text="USD value when the first bucket opens.")
    timeframe = serializers.CharField(source="timeframe.value")
    period = serializers.CharField(source="period.value")


# The CSV export of a history: a row per bucket, the scalars repeated on each (every field of
# the JSON, under its name).
HISTORY_SERIES = ("timestamp", "equity", "profit_loss", "profit_loss_pct", "cash_flow")


class PortfolioHistoryView(CsvExportMixin, ReplicaReadMixin, OwnerScopedMixin, APIView):
    """The portfolio's value over time, rebuilt from the ledgers and the recorded prices:
    at each bucket's close, cash then plus each holding then at the last recorded price.
    `?format=csv` (or `Accept: text/csv`): a row per bucket as a CSV file."""

    @extend_schema(
        parameters=[HistoryQuerySerializer],
        responses={200: PortfolioHistorySerializer, **error_responses(400)},
        examples=[
            OpenApiExample(
                "Three days",
                response_only=True,
                value={
                    "timestamp": ["2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"],
                    "equity": ["10000.00", "10512.40", "10498.15"],
                    "profit_loss": ["0.00", "12.40", "-1.85"],
                    "profit_loss_pct": ["0.00", "0.12", "-0.02"],
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
        user = self.target_user()
        history = get_portfolio_history(
            user=user, period=period, timeframe=query.get("timeframe"), end=query.get("date_end")
        )
        body = PortfolioHistorySerializer(history).data
        if self.wants_csv():
            return self.export_csv(body, username=user.get_username())
        return Response(body)

    def export_csv(self, body: dict, *, username: str):
        # At most MAX_POINTS rows, read in one statement before the answer starts (so that a
        # history refused is answered as a 400); written out a chunk at a time.
        scalars = {name: value for name, value in body.items() if name not in HISTORY_SERIES}
        header = [*HISTORY_SERIES, *scalars]

        def read_chunk(start: int | None) -> Chunk:
            start = start or 0
            end = min(start + self.csv_chunk_rows, len(body["timestamp"]))
            rows = [[*(cells({n: body[n][i] for n in HISTORY_SERIES})), *cells(scalars)] for i in range(start, end)]
            return Chunk(csv_lines(rows), end if end < len(body["timestamp"]) else None)

        return self.csv_export(read_chunk, header=header, username=username, what="portfolio-history")
