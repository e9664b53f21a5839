"""Logging out and API keys over HTTP (SPEC sections 10 and 11)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiKey
from core.api.fields import TimestampField
from core.api.openapi import error_responses
from core.api.serializers import InputSerializer, ReadSerializer


class ApiKeySerializer(ReadSerializer):
    key_id = serializers.CharField()
    name = serializers.CharField()
    created_at = TimestampField()


class NewApiKeySerializer(ReadSerializer):
    key_id = serializers.CharField(source="api_key.key_id")
    secret_key = serializers.CharField(help_text="Shown this once; only its hash is kept.")
    name = serializers.CharField(source="api_key.name")
    created_at = TimestampField(source="api_key.created_at")


class CreateApiKeySerializer(InputSerializer):
    name = serializers.CharField(max_length=100, help_text="What the key is for, e.g. the program using it.")


class LogoutView(APIView):
    """Revoke the API token you authenticated with (or your token, when logged in otherwise).
    API keys stay until revoked at api-keys/."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        services.revoke_token(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyViewSet(viewsets.GenericViewSet):
    """API keys for programs: send them as the `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY`
    headers. The secret is shown once, when the key is created."""

    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()  # for the schema; every action scopes to request.user
    pagination_class = None  # a short list: at most MAX_ACTIVE_KEYS
    lookup_field = "key_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(responses=ApiKeySerializer(many=True))
    def list(self, request):
        """Your active keys, newest first (never their secrets)."""
        return Response(ApiKeySerializer(selectors.get_api_keys(user=request.user), many=True).data)

    @extend_schema(
        request=CreateApiKeySerializer,
        responses={201: NewApiKeySerializer, **error_responses(409)},
        examples=[OpenApiExample("A key for a trading bot", value={"name": "grid bot"}, request_only=True)],
    )
    def create(self, request):
        data = CreateApiKeySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new_key = services.create_api_key(user=request.user, name=data.validated_data["name"])
        return Response(NewApiKeySerializer(new_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, key_id: str):
        """Revoke one of your keys: it never authenticates again."""
        if not services.revoke_api_key(user=request.user, key_id=key_id):
            raise exceptions.NotFound("No such API key.")
        return Response(status=status.HTTP_204_NO_CONTENT)
