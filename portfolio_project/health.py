"""``GET /api/v1/health/``: what a load balancer and an operator need, cheaply.

It never calls the price provider (it reports what this process last learned of it, from
the circuit breaker), and it is answered even when the cache or the database is down:
those make it ``degraded`` with a 503, so a load balancer stops sending traffic to an
instance that cannot serve. A price provider outage is reported (``degraded``) but keeps
the 200: every instance shares the provider, and balances and orders that need no price
still work.
"""

import secrets

from django.core.cache import cache
from django.db import DatabaseError, connection
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.prices import provider_status

HEALTH_KEY = "health:probe"

HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.CharField(),
        "database": serializers.CharField(),
        "cache": serializers.DictField(),
        "price_provider": serializers.DictField(),
    },
)


def cache_status() -> dict:
    """``{"ok": bool, ...}`` from a write and read back of a random value (the cache fails
    open, so an outage shows as a value that does not come back, never as an exception)."""
    value = secrets.token_hex(8)
    cache.set(HEALTH_KEY, value, 10)
    if cache.get(HEALTH_KEY) == value:
        return {"ok": True}
    outage = getattr(cache, "outage", None)  # core.cache.FailOpenRedisCache says since when, and why
    return {"ok": False, **((outage and outage()) or {})}


class HealthView(APIView):
    """Database, cache and price provider status. No authentication; 503 when the database or
    the cache is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(
                HealthSerializer, description="The database or the cache is unreachable (status degraded)."
            ),
        }
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            database = "ok"
        except DatabaseError as error:
            database = f"error: {error.__class__.__name__}"
        cache_state = cache_status()
        # Neither reads the database: both answer while it is down.
        prices = provider_status()
        serving = database == "ok" and cache_state["ok"]
        body = {
            "status": "ok" if serving and prices["ok"] else "degraded",
            "database": database,
            "cache": cache_state,
            "price_provider": prices,
        }
        return Response(body, status=200 if serving else 503)
