"""Logging out, changing the password and API keys over HTTP (docs/DESIGN.md, "Permissions").
What changes credentials takes the user's token or a session, never an API key
(accounts/permissions.py)."""

from __future__ import annotations

from django.contrib.auth import password_validation, update_session_auth_hash
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiKey
from accounts.permissions import ReadOnlyForApiKeys
from core.api.fields import TimestampField
from core.api.openapi import error_responses
from core.api.serializers import InputSerializer, ReadSerializer
from core.api.throttles import check_login_attempt


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


class ChangePasswordSerializer(InputSerializer):
    old_password = serializers.CharField(max_length=128, style={"input_type": "password"})
    new_password = serializers.CharField(max_length=128, style={"input_type": "password"})
    keep_api_keys = serializers.BooleanField(
        default=False,
        help_text="Keep your API keys working under the new password. By default they end with the old one.",
    )


PasswordChangedSerializer = inline_serializer(
    "PasswordChanged",
    {
        "username": serializers.CharField(),
        "token": serializers.CharField(help_text="Your new token: the old one ended with the old password."),
        "api_keys_kept": serializers.IntegerField(help_text="How many API keys still work (0 unless kept)."),
    },
)


class ChangePasswordView(generics.GenericAPIView):
    """Change your password. Your token ends with the old password (the answer carries a new
    one; a session stays logged in), and so do your API keys unless `keep_api_keys` is true.
    Throttled as logins are (THROTTLE_AUTH_RATE per address, THROTTLE_LOGIN_USERNAME_RATE per
    username). Needs your token or a session, never an API key."""

    permission_classes = [ReadOnlyForApiKeys]
    refused_to_api_keys = "change the password"
    throttle_classes: list = []  # counted as a login attempt, once the body is read
    # A GenericAPIView with its serializer: the browsable API shows a form.
    serializer_class = ChangePasswordSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        request=ChangePasswordSerializer,
        responses={200: PasswordChangedSerializer},
        examples=[
            OpenApiExample(
                "New password, keeping the bots' keys",
                value={
                    "old_password": "a-long-passphrase-42",
                    "new_password": "another-long-passphrase-43",
                    "keep_api_keys": True,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = ChangePasswordSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user
        wait = check_login_attempt(request, user.get_username())
        if wait is not None:
            raise exceptions.Throttled(wait, "Too many password attempts.")
        if not services.password_is_correct(user=user, raw_password=data.validated_data["old_password"]):
            raise exceptions.ValidationError({"old_password": ["This is not your current password."]})
        try:
            password_validation.validate_password(data.validated_data["new_password"], user)
        except DjangoValidationError as error:
            raise exceptions.ValidationError({"new_password": list(error.messages)})
        kept = services.change_password(
            user=user,
            raw_password=data.validated_data["new_password"],
            keep_api_keys=data.validated_data["keep_api_keys"],
        )
        if request.auth is None:  # a session: it stays logged in, as Django's own password change keeps it
            update_session_auth_hash(request, user)
        token = services.issue_token(user=user)
        return Response({"username": user.get_username(), "token": token.key, "api_keys_kept": kept})


class LogoutView(APIView):
    """Revoke the API token you authenticated with (or your token, when logged in otherwise).
    API keys stay until revoked at api-keys/. Needs your token or a session, never an API key."""

    permission_classes = [ReadOnlyForApiKeys]
    refused_to_api_keys = "log out (end tokens or sessions)"

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        services.revoke_token(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyViewSet(viewsets.GenericViewSet):
    """API keys for programs: send them as the `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY`
    headers. The secret is shown once, when the key is created. Keys are created and revoked
    with your token or a session; a key may only list them."""

    permission_classes = [ReadOnlyForApiKeys]
    refused_to_api_keys = "create or revoke API keys"
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
