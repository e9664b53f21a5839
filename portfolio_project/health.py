from django.db import DatabaseError, connection
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.prices import provider_status

HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.CharField(),
        "database": serializers.CharField(),
        "price_provider": serializers.DictField(),
    },
)


class HealthView(APIView):
    """Database and price provider status. No authentication; 503 when the database is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(HealthSerializer, description="The database is unreachable (status degraded)."),
        }
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            database = "ok"
        except DatabaseError as error:
            database = f"error: {error.__class__.__name__}"
        healthy = database == "ok"
        # The provider's status reads the asset table: with the database down it would raise.
        prices = provider_status() if healthy else {"ok": False, "detail": "not checked: the database is down"}
        body = {
            "status": "ok" if healthy and prices.get("ok") else "degraded",
            "database": database,
            "price_provider": prices,
        }
        return Response(body, status=200 if healthy else 503)
